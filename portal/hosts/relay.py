"""Logs and exec of any container on a host, relayed from its engine as Server-Sent Events.

The apps context relays its own containers through the same functions; here any container of a
host can be reached by id or name (operators debugging what runs beside Spectr's apps).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response

from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, UpstreamUnavailable
from portal.core.sse import sse_event, with_heartbeats
from portal.engines import ContainerEngine, EngineError, ExecExit
from portal.engines import errors as engine_errors
from portal.extensions import db
from portal.hosts.log_follow import LogFollower, follow_settings
from portal.hosts.models import Host
from portal.hosts.service import engine_for


def open_engine(host: Host) -> ContainerEngine:
    """The host's engine, or a 502 saying why it cannot be reached."""
    try:
        return engine_for(host)
    except EngineError as exc:
        raise UpstreamUnavailable(
            f"Cannot reach the engine of '{host.name}': {exc.message}"
        ) from None


def stream_logs(
    engine: ContainerEngine,
    container_id: str,
    tail: int,
    follow: bool,
    since_ns: int | None = None,
) -> Iterator[str]:
    """SSE of a container's log: after `since_ns`, or its last `tail` lines, then (follow)
    what it writes until it stops, with heartbeats while it is quiet; then why it ended."""
    settings = follow_settings()
    follower = LogFollower(
        engine,
        container_id,
        follow=follow,
        tail=tail,
        since_ns=since_ns,
        read_timeout_s=settings.read_timeout_s,
    )
    try:
        follower.open()
    except engine_errors.NotFound:
        raise NotFound(f"No container '{container_id}' on this host.") from None
    except EngineError as exc:
        raise UpstreamUnavailable(f"Cannot read logs: {exc.message}") from None
    if not follow:
        return follower.events()
    return with_heartbeats(follower.events(), settings.heartbeat_s, on_close=follower.stop)


FILE_CHUNK_BYTES = 64 * 1024  # one write per 64 KiB: a line per write is slow on long logs


def download_logs(
    engine: ContainerEngine, container_id: str, tail: int | None, timestamps: bool
) -> Response:
    """A container's log (its last `tail` lines, or all) as a .log file streamed to the browser.

    Lines keep the engine's order; with `timestamps`, each starts with its RFC 3339 time, as
    `docker logs -t` writes them. Reading is not audited: only changes are.
    """
    try:
        info = engine.inspect_container(container_id)
        chunks = engine.logs(info.id, tail=tail, timestamps=True)
    except engine_errors.NotFound:
        engine.close()
        raise NotFound(f"No container '{container_id}' on this host.") from None
    except EngineError as exc:
        engine.close()
        raise UpstreamUnavailable(f"Cannot read logs: {exc.message}") from None

    def body() -> Iterator[bytes]:
        pending, line_start = [], True
        try:
            for chunk in chunks:
                # Docker splits lines over 16 KiB into frames; only a line's first gets a time.
                stamp = f"{chunk.ts} " if timestamps and line_start and chunk.ts else ""
                pending.append((stamp + chunk.data).encode())
                line_start = chunk.data.endswith("\n")
                if sum(map(len, pending)) >= FILE_CHUNK_BYTES:
                    yield b"".join(pending)
                    pending = []
            yield b"".join(pending)
        except EngineError as exc:
            yield f"\n[spectr: the log could not be read to its end: {exc.message}]\n".encode()
        finally:
            getattr(chunks, "close", lambda: None)()
            engine.close()

    return log_file_response(info.name, body())


def log_file_response(container_name: str, body: Iterator[bytes]) -> Response:
    """`body` as an attachment named after the container and the moment it was read."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", container_name).strip("._") or "container"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = Response(body, mimetype="text/plain")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}-{stamp}.log"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def stream_exec(
    host: Host, container_id: str, argv: list[str], options: dict[str, Any]
) -> Iterator[str]:
    """Run argv (never through a shell) and stream stdout/stderr, then the exit code, as SSE."""
    engine = open_engine(host)
    try:
        info = engine.inspect_container(container_id)
    except engine_errors.NotFound:
        engine.close()
        raise NotFound(f"No container '{container_id}' on host '{host.name}'.") from None
    if info.state != "running":
        engine.close()
        raise Conflict(f"Container '{info.name}' is {info.state}; exec needs it running.")
    record_audit(
        "host.container.exec",
        f"host:{host.name}/container:{info.name}",
        details={"argv": argv, "user": options.get("user")},
    )
    db.session.commit()
    stream = engine.exec_stream(info.id, argv, **options)

    def events() -> Iterator[str]:
        try:
            for item in stream:
                if isinstance(item, ExecExit):
                    yield sse_event(
                        {"exit_code": item.exit_code, "timed_out": item.timed_out}, event="exit"
                    )
                else:
                    yield sse_event({"data": item.data}, event=item.stream)
        except EngineError as exc:
            yield sse_event({"error": exc.message}, event="error")
        finally:
            stream.close()
            engine.close()

    return events()
