"""Let addons answer a failed upstream, or send the request to another one, before the client sees it.

mitmproxy 11 always answers an upstream failure (connection refused, reset, closed) with its
own text/html 502, whatever the `error` hook does. This restores what mitmproxy's open pull
request #7999 proposes: when the hook sets `flow.response`, that response goes to the client
instead (on a kept-alive connection), and nothing else changes. Responses that had already
begun (a stream cut midway) are never replaced. `UPSTREAM_FAILED` in `flow.metadata` tells the
hook that the failure came from the server side, so answering it makes sense; `CLIENT_GONE`
tells it that the client closed its connection first (a cancel, not an upstream failure).

Retries (nginx's `proxy_next_upstream`, LiteLLM's retries and fallbacks) need one more thing
mitmproxy has no hook for: sending the same request again, on the same client stream, to
another server. The patch gives addons an `upstream_retry(flow)` hook at the two moments when
an attempt failed and nothing has reached the client yet:

- the upstream failed before response headers (refused, reset, closed, or closed by the
  routing addon's timeout): before the `error` hook runs;
- an addon set `RETRY_WANTED` in `responseheaders` (a 5xx or a 429 it may retry): the body
  is read (kept from the client, not streamed), then the hook runs instead of `response`.

When the hook sets `RESEND` (after pointing `flow.request` at another server), the stream
sends the request again through mitmproxy's own connection handling (a new or kept-alive
upstream connection, `server_connect` hooks, streaming of the new answer) and forgets the
failed attempt: no `response` or `error` hook ever sees it, so usage, metrics and the access
log record the request once, as answered by the last attempt. The hook blocks the stream,
which also lets the failed connection's HTTP/1 layer finish its bookkeeping before a kept-alive
connection to the same server is reused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from mitmproxy import http
from mitmproxy.connection import Server
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import (
    HttpStream,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.version import VERSION

UPSTREAM_FAILED = "spectr.upstream_failed"
# Set when the client went away before its answer was complete (mitmproxy reports that as a
# request error with nginx's 499, "client closed request"); the flow ends in the `error` hook.
CLIENT_GONE = "spectr.client_gone"
CLIENT_CLOSED_STATUS = 499
# Set once a stream's last event (`data: [DONE]`) went to the client: a client that closes after
# it (the openai client does, without waiting for the chunked body's end) got its whole answer.
ANSWER_COMPLETE = "spectr.answer_complete"
# Set by an addon's `responseheaders`: read this (failed) answer's body, then ask `upstream_retry`.
RETRY_WANTED = "spectr.retry_wanted"
# Set by `upstream_retry`: send the request again, to where `flow.request` now points.
RESEND = "spectr.resend"
# The patch follows mitmproxy's internals, which change between major versions: on another
# one the proxy keeps mitmproxy's own 502 rather than risk a broken answer.
PATCHED_MAJOR = "11."

log = logging.getLogger(__name__)

_original = HttpStream.handle_protocol_error
_original_send_response = HttpStream.send_response


@dataclass
class UpstreamRetryHook(commands.StartHook):
    """An upstream attempt failed before anything reached the client: an addon may retry it.

    The failed answer, if there was one, is in `flow.response`; otherwise `UPSTREAM_FAILED` in
    `flow.metadata` holds mitmproxy's message. Point `flow.request` elsewhere and set `RESEND`
    in `flow.metadata` to send the request again.
    """

    flow: http.HTTPFlow


def install() -> None:
    """Patch mitmproxy's HTTP stream once; later calls do nothing."""
    if not VERSION.startswith(PATCHED_MAJOR):
        log.warning(
            "mitmproxy %s: upstream failures keep mitmproxy's own 502 answers, without retries",
            VERSION,
        )
        return
    if HttpStream.handle_protocol_error is not _handle_protocol_error:
        HttpStream.handle_protocol_error = _handle_protocol_error  # type: ignore[method-assign]
        HttpStream.send_response = _send_response  # type: ignore[method-assign]


def _send_response(self: HttpStream, already_streamed: bool = False) -> Generator[Any, Any, None]:
    flow = self.flow
    if not already_streamed and flow.metadata.pop(RETRY_WANTED, False):
        yield UpstreamRetryHook(flow)
        if flow.metadata.pop(RESEND, False):
            yield from _resend(self)
            return
    yield from _original_send_response(self, already_streamed)


def _resend(stream: HttpStream) -> Generator[Any, Any, None]:
    """Send the flow's request again, as mitmproxy sends it the first time, and await its answer."""
    flow = stream.flow
    flow.response = None
    flow.metadata.pop(UPSTREAM_FAILED, None)
    stream.response_body_buf.clear()
    stream.server_state = stream.state_wait_for_response_headers
    # Until the new connection is made, the flow's server is one that never connected: a
    # failed connect is then told apart from a failure of a connection that was made.
    failed = flow.server_conn
    flow.server_conn = Server(
        address=(flow.request.host, flow.request.port),
        transport_protocol=failed.transport_protocol,
    )
    flow.server_conn.via = failed.via
    if not (yield from stream.make_server_connection()):
        return  # the connect failure went through handle_protocol_error: retried or answered
    request = flow.request
    content = request.raw_content
    server = stream.context.server
    yield SendHttp(RequestHeaders(stream.stream_id, request, not content), server)
    if content:
        yield SendHttp(RequestData(stream.stream_id, content), server)
    yield SendHttp(RequestEndOfMessage(stream.stream_id), server)


def _retryable(stream: HttpStream, event: Any) -> bool:
    """Tell whether an upstream failure happened while the client has had nothing yet."""
    return (
        isinstance(event, ResponseProtocolError)
        and stream.flow.response is None
        and stream.client_state == stream.state_done
        and stream.server_state == stream.state_wait_for_response_headers
    )


def _handle_protocol_error(self: HttpStream, event: Any) -> Generator[Any, Any, None]:
    flow = getattr(self, "flow", None)
    if flow is not None and _retryable(self, event):
        flow.metadata[UPSTREAM_FAILED] = event.message
        yield UpstreamRetryHook(flow)
        if flow.metadata.pop(RESEND, False):
            yield from _resend(self)
            return
    answerable = (
        flow is not None and isinstance(event, ResponseProtocolError) and flow.response is None
    )
    if answerable:
        flow.metadata[UPSTREAM_FAILED] = event.message
    gone = isinstance(event, RequestProtocolError) and event.code == CLIENT_CLOSED_STATUS
    if flow is not None and gone:
        flow.metadata[CLIENT_GONE] = event.message
    steps = _original(self, event)
    reply = None
    while True:
        try:
            command = steps.send(reply)
        except StopIteration:
            return
        if answerable and flow.response is not None and _is_error_to_client(self, command):
            yield from _send_answer(self)
            reply = None
            continue
        reply = yield command


def _is_error_to_client(stream: HttpStream, command: commands.Command) -> bool:
    return (
        isinstance(command, SendHttp)
        and isinstance(command.event, ResponseProtocolError)
        and command.connection is stream.context.client
    )


def _send_answer(stream: HttpStream) -> Generator[Any, Any, None]:
    response = stream.flow.response
    assert response is not None
    response.timestamp_start = response.timestamp_start or time.time()
    response.timestamp_end = time.time()
    content = response.raw_content
    client = stream.context.client
    yield SendHttp(ResponseHeaders(stream.stream_id, response, not content), client)
    if content:
        yield SendHttp(ResponseData(stream.stream_id, content), client)
    yield SendHttp(ResponseEndOfMessage(stream.stream_id), client)


def client_cancelled(flow: Any) -> bool:
    """Tell whether a flow ended because its client went away before its answer (recorded as 499)."""
    return CLIENT_GONE in flow.metadata and not answered_in_full(flow)


def answered_in_full(flow: Any) -> bool:
    """Tell whether the client got the whole answer, though the flow ended in the `error` hook."""
    return ANSWER_COMPLETE in flow.metadata
