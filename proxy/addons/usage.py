"""Usage accounting: one record per gateway request, tokens from `usage` or counted in streams."""

from __future__ import annotations

import os
import socket
import time

from mitmproxy import http

from proxy.state import GATEWAY, REQUEST_ID, TARGET, TOKENS, GatewayRequest, Target
from proxy.usage import SseTokenTap, TokenCount, UsageRecord, UsageSink, tokens_from_body

TAP = "spectr.tap"


class Usage:
    """Record who used which model how much, into the usage stream."""

    def __init__(self, sink: UsageSink) -> None:
        self.sink = sink
        self.instance = f"{socket.gethostname()}:{os.getpid()}"

    def running(self) -> None:
        self.sink.start()

    async def done(self) -> None:
        await self.sink.close()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        gateway = flow.metadata.get(GATEWAY)
        if gateway is None or gateway.model is None or not flow.response:
            return
        if flow.response.stream:
            # Wrap the routing addon's pass-through so chunks are counted as they go by.
            flow.metadata[TAP] = tap = SseTokenTap()
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
        response = flow.response
        if tap is not None:
            tokens = tap.count
        elif response is not None and response.status_code < 400:
            tokens = tokens_from_body(response.content)
        else:
            tokens = TokenCount()
        flow.metadata[TOKENS] = tokens
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
                status=response.status_code if response else 502,
                tokens=tokens,
                latency_ms=(end - start) * 1000,
                ttfb_ms=(headers_at - start) * 1000,
                stream=tap is not None,
                proxy=self.instance,
                x_request_id=flow.metadata.get(REQUEST_ID, ""),
            )
        )
