"""Usage accounting: one record per gateway request, tokens from `usage` or estimated."""

from __future__ import annotations

import json
import os
import socket
import time

from mitmproxy import http

from proxy.addons.models import request_json
from proxy.error_hook import ANSWER_COMPLETE, CLIENT_CLOSED_STATUS, client_cancelled
from proxy.state import GATEWAY, REQUEST_ID, TARGET, TOKENS, GatewayRequest, Target
from proxy.usage import (
    SseTokenTap,
    TokenCount,
    UsageRecord,
    UsageSink,
    estimate_prompt_tokens,
    tokens_from_body,
)

TAP = "spectr.tap"
# Endpoints whose streams report usage in a last chunk when `stream_options.include_usage` is set.
# (Responses API streams always end in `response.completed`, which carries the usage.)
USAGE_STREAM_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions"})


class Usage:
    """Record who used which model how much, into the usage stream."""

    def __init__(self, sink: UsageSink) -> None:
        self.sink = sink
        self.instance = f"{socket.gethostname()}:{os.getpid()}"

    def running(self) -> None:
        self.sink.start()

    async def done(self) -> None:
        await self.sink.close()

    def request(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if flow.response or gateway is None or gateway.model is None or not gateway.stream:
            return
        if gateway.endpoint in USAGE_STREAM_ENDPOINTS:
            ask_for_stream_usage(flow, gateway)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if gateway is None or gateway.model is None or not flow.response:
            return
        if flow.response.stream and is_event_stream(flow.response):
            # Wrap the routing addon's pass-through so chunks are counted as they go by (binary
            # answers, streamed too, carry no tokens to count).
            flow.metadata[TAP] = tap = SseTokenTap(
                strip_usage=gateway.usage_added,
                on_done=lambda: flow.metadata.__setitem__(ANSWER_COMPLETE, True),
            )
            flow.response.stream = tap

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if gateway is None or gateway.key is None or gateway.model is None:
            return
        target: Target | None = flow.metadata.get(TARGET)
        tap: SseTokenTap | None = flow.metadata.get(TAP)
        flow.metadata[TOKENS] = tokens = tokens_of(flow, tap)
        response = flow.response
        status = response.status_code if response else 502
        if client_cancelled(flow):
            status = CLIENT_CLOSED_STATUS
        start = flow.request.timestamp_start
        end = (response.timestamp_end if response else None) or time.time()
        headers_at = (response.timestamp_start if response else None) or end
        self.sink.put(
            UsageRecord(
                ts=start,
                request_id=flow.id,
                key=gateway.key,
                model=gateway.model.name,
                endpoint=gateway.endpoint,
                replica=target.replica.id if target else "",
                status=status,
                tokens=tokens,
                latency_ms=(end - start) * 1000,
                ttfb_ms=(headers_at - start) * 1000,
                stream=tap is not None,
                proxy=self.instance,
                x_request_id=flow.metadata.get(REQUEST_ID, ""),
                fallback_from=gateway.fallback_from,
            )
        )


def is_event_stream(response: http.Response) -> bool:
    """Tell whether a response is Server-Sent Events."""
    return response.headers.get("content-type", "").startswith("text/event-stream")


def ask_for_stream_usage(flow: http.HTTPFlow, gateway: GatewayRequest) -> None:
    """Ask the model for a stream's usage chunk when the client did not."""
    body = request_json(flow)
    if body is None:
        return
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    if options.get("include_usage") is True:
        return
    body["stream_options"] = {**options, "include_usage": True}
    flow.request.content = json.dumps(body).encode()
    gateway.usage_added = True


def tokens_of(flow: http.HTTPFlow, tap: SseTokenTap | None) -> TokenCount:
    """Return a finished flow's tokens: the reported usage, or an estimate for streams."""
    if tap is None:
        response = flow.response
        ok = response is not None and response.status_code < 400
        return tokens_from_body(response.content) if ok and response else TokenCount()
    tokens = tap.count
    if tokens.source == "usage":
        return tokens
    # No usage came (the runtime ignores include_usage, or the client left first): the prompt
    # was read by the model all the same, so estimate it from its text.
    prompt = estimate_prompt_tokens(request_json(flow))
    return TokenCount(prompt, tokens.completion, "estimated")
