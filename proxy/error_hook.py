"""Let an addon's `error` hook answer the client when the upstream failed.

mitmproxy 11 always answers an upstream failure (connection refused, reset, closed) with its
own text/html 502, whatever the `error` hook does. This restores what mitmproxy's open pull
request #7999 proposes: when the hook sets `flow.response`, that response goes to the client
instead (on a kept-alive connection), and nothing else changes. Responses that had already
begun (a stream cut midway) are never replaced. `UPSTREAM_FAILED` in `flow.metadata` tells the
hook that the failure came from the server side, so answering it makes sense; `CLIENT_GONE`
tells it that the client closed its connection first (a cancel, not an upstream failure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any

from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import (
    HttpStream,
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
# The patch follows mitmproxy's internals, which change between major versions: on another
# one the proxy keeps mitmproxy's own 502 rather than risk a broken answer.
PATCHED_MAJOR = "11."

log = logging.getLogger(__name__)

_original = HttpStream.handle_protocol_error


def install() -> None:
    """Patch mitmproxy's HTTP stream once; later calls do nothing."""
    if not VERSION.startswith(PATCHED_MAJOR):
        log.warning("mitmproxy %s: upstream failures keep mitmproxy's own 502 answers", VERSION)
        return
    if HttpStream.handle_protocol_error is not _handle_protocol_error:
        HttpStream.handle_protocol_error = _handle_protocol_error  # type: ignore[method-assign]


def _handle_protocol_error(self: HttpStream, event: Any) -> Generator[Any, Any, None]:
    flow = getattr(self, "flow", None)
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
