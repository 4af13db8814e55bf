"""Server-Sent Events: format events and stream them without buffering."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response, current_app, stream_with_context


def sse_event(data: Any, event: str | None = None, event_id: int | str | None = None) -> str:
    """Format one SSE event; `data` is sent as JSON."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, default=str))
    return "\n".join(lines) + "\n\n"


HEARTBEAT = ": heartbeat\n\n"
_DONE = object()


def heartbeat_seconds() -> float:
    """SPECTR_SSE_HEARTBEAT_SECONDS: how long a stream may stay silent."""
    return float(current_app.config["SPECTR_SSE_HEARTBEAT_SECONDS"])


def with_heartbeats(
    events: Iterator[str], interval_s: float, on_close: Callable[[], None] | None = None
) -> Iterator[str]:
    """Yield `events`, and an SSE comment whenever none came for `interval_s` seconds.

    `events` runs in a thread of its own: it blocks on reads from an engine, and a thread
    that blocks cannot also tell the browser (and any proxy between) that the stream is alive.
    When the client leaves, the next heartbeat fails to write, this generator is closed,
    `on_close` tells the source to stop, and the thread ends at its next event or read
    timeout (the engine's read timeout bounds how long that takes).
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=256)
    stopping = threading.Event()

    def hand(item: Any) -> bool:
        while not stopping.is_set():
            try:
                handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in events:
                if not hand(item):
                    break
        except Exception as exc:  # raised again in the request's thread, where it is logged
            hand(exc)
        finally:
            getattr(events, "close", lambda: None)()
            hand(_DONE)

    threading.Thread(target=pump, name="sse-pump", daemon=True).start()
    try:
        while True:
            try:
                item = handoff.get(timeout=interval_s)
            except queue.Empty:
                yield HEARTBEAT
                continue
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stopping.set()
        if on_close is not None:
            on_close()


def sse_response(events: Iterable[str]) -> Response:
    """Stream `events` as text/event-stream, telling proxies not to buffer it."""

    def generate() -> Iterator[str]:
        yield ": stream open\n\n"
        yield from events

    response = Response(stream_with_context(generate()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def sse_alt_response(blp: Any, events: str) -> Any:
    """Document that a 200 is (or, when following, becomes) a text/event-stream.

    flask-smorest merges responses of one status with different content types, so this
    stands beside the JSON of `@blp.response(200, Schema)` where the endpoint answers both.
    """
    return blp.alt_response(
        200,
        schema={"type": "string", "description": f"Server-Sent Events: {events}"},
        content_type="text/event-stream",
        description=f"JSON, or Server-Sent Events: {events}",
        success=True,
    )
