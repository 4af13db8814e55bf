"""Server-Sent Events: format events and stream them without buffering."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, stream_with_context


def sse_event(data: Any, event: str | None = None, event_id: int | str | None = None) -> str:
    """Format one SSE event; `data` is sent as JSON."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, default=str))
    return "\n".join(lines) + "\n\n"


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
