"""A container's log as Server-Sent Events that last: resumed, kept alive, and ended with a why.

Each line carries the engine's timestamp as its event id. A browser whose connection broke
reconnects with `Last-Event-ID` (or a page passes `since=`), and the stream starts after that
line: nothing is shown twice, nothing is lost. Inside one stream the same happens when the
engine's read times out or its connection breaks: the follower opens the log again from the
last line it sent, and the browser sees nothing but the heartbeats it got meanwhile. The last
event, `end`, says why the stream ended: the container stopped (with its exit code), was
removed, has not started yet, or the engine could not be read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import current_app

from portal.core.errors import ValidationFailed
from portal.core.sse import heartbeat_seconds, sse_event
from portal.core.timeutil import NANOS, engine_time_nanos
from portal.engines import ContainerEngine, EngineError, LogChunk
from portal.engines import errors as engine_errors

# Docker answers `since` to the second's fraction a float holds; asking a microsecond early
# loses no line to rounding, and the lines at or before the last one sent are skipped anyway.
SINCE_MARGIN_S = 1e-6
REOPEN_PAUSE_S = 0.2  # a stream that ended while the container runs: it was restarting

# What the API documents of these streams.
LOG_EVENTS = (
    "`line` events {stream, data, ts} whose id is the line's timestamp (reconnect with "
    "Last-Event-ID or since= to go on after it), `: heartbeat` comments while the container "
    "is quiet, then one `end` event {reason: stopped | removed | not_started | error | done, "
    "message}"
)


@dataclass(frozen=True)
class FollowSettings:
    """How often an idle stream sends a heartbeat, and how long an engine read may wait."""

    heartbeat_s: float
    read_timeout_s: float


def follow_settings() -> FollowSettings:
    """SPECTR_SSE_HEARTBEAT_SECONDS and SPECTR_LOG_READ_TIMEOUT_SECONDS of this portal."""
    return FollowSettings(
        heartbeat_seconds(), float(current_app.config["SPECTR_LOG_READ_TIMEOUT_SECONDS"])
    )


def parse_since(value: str | None, field: str = "since") -> int | None:
    """Nanoseconds of a `since` (a log line's timestamp, as its event id, or Unix seconds)."""
    if not value:
        return None
    try:
        return int(float(value) * NANOS)
    except ValueError:
        pass
    nanos = engine_time_nanos(value)
    if nanos is None:
        raise ValidationFailed(
            f"{field} must be a log line's timestamp (RFC 3339) or Unix seconds.",
            {field: ["not a timestamp"]},
        )
    return nanos


def validate_since(value: str) -> None:
    """Marshmallow validator of a `since` query parameter."""
    try:
        parse_since(value)
    except ValidationFailed as exc:
        raise ma.ValidationError("a log line's timestamp (RFC 3339) or Unix seconds") from exc


class TailField(ma.fields.Field):
    """How many of the last lines to read: a number, or `all`; `all` loads as None."""

    MAX = 10_000_000

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"description": "the last lines to read: a number or all", "example": "500"}
        super().__init__(metadata={**metadata, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        if isinstance(value, str) and value.strip().lower() == "all":
            return None
        try:
            lines = int(value)
        except (TypeError, ValueError):
            raise ma.ValidationError("a number of lines or 'all'") from None
        if not 0 <= lines <= self.MAX:
            raise ma.ValidationError(f"a number of lines from 0 to {self.MAX}, or 'all'")
        return lines


def resume_point(since: str | None, last_event_id: str | None) -> int | None:
    """Where a (re)connecting stream starts: the later of `since=` and `Last-Event-ID`."""
    points = [parse_since(since), parse_since(last_event_id, "Last-Event-ID")]
    return max((point for point in points if point is not None), default=None)


def ended(reason: str, message: str, **details: Any) -> str:
    """The last event of a log stream: why it ended, in words a page can show."""
    return sse_event({"reason": reason, "message": message, **details}, event="end")


def not_started_event() -> str:
    """The end of a stream that had no container to read."""
    return ended("not_started", "No container yet; waiting for one to start.")


class LogFollower:
    """One container's log from an engine, from `since` (ns) or the last `tail` lines."""

    def __init__(
        self,
        engine: ContainerEngine,
        container: str,
        *,
        follow: bool,
        tail: int | None,
        since_ns: int | None,
        read_timeout_s: float | None = None,
    ) -> None:
        self.engine, self.container, self.follow = engine, container, follow
        self.tail, self.after_ns, self.read_timeout_s = tail, since_ns, read_timeout_s
        self._stream: Iterator[LogChunk] | None = None
        self._stopped = threading.Event()

    def stop(self) -> None:
        """The reader left: open no new engine stream (the one open ends at its read timeout)."""
        self._stopped.set()

    def open(self) -> None:
        """Open the engine's log now, so a missing container raises before any byte is sent."""
        try:
            self._stream = self._open()
        except BaseException:
            self.engine.close()
            raise

    def _open(self) -> Iterator[LogChunk]:
        since = None if self.after_ns is None else self.after_ns / NANOS - SINCE_MARGIN_S
        return self.engine.logs(
            self.container,
            follow=self.follow,
            since=since,
            # With a since, every line after it; a first stream that saw no line resumes
            # with none of the old ones again (tail 0).
            tail=None if since is not None else (0 if self._stream is not None else self.tail),
            timestamps=True,
            read_timeout_s=self.read_timeout_s if self.follow else None,
        )

    def events(self) -> Iterator[str]:
        """`line` events with the timestamp as id, then one `end` event."""
        try:
            while True:
                try:
                    yield from self._lines()
                except engine_errors.Unavailable:
                    if not self.follow:
                        raise
                    if self._stopped.is_set():
                        return
                    # the read timed out on a quiet container, or the connection broke
                    self._reopen()
                    continue
                end = self._why_it_ended()
                if end is not None:
                    yield end
                    return
                time.sleep(REOPEN_PAUSE_S)
                if self._stopped.is_set():
                    return
                self._reopen()
        except engine_errors.NotFound:
            yield ended("removed", "The container was removed.", container=self.container)
        except EngineError as exc:
            yield ended("error", f"Cannot read the log: {exc.message}", container=self.container)
        finally:
            self._close_stream()
            self.engine.close()

    def _lines(self) -> Iterator[str]:
        assert self._stream is not None
        # Skip what came before the point this engine stream was opened from, not each line
        # older than the one before it: stdout and stderr reach the engine through two pipes,
        # and a stderr line can carry an earlier time than the stdout line logged before it.
        resumed_from = self.after_ns
        for chunk in self._stream:
            nanos = engine_time_nanos(chunk.ts)
            if nanos is not None:
                if resumed_from is not None and nanos <= resumed_from:
                    continue  # sent before the reconnection
                self.after_ns = max(nanos, self.after_ns or 0)
            data = {"stream": chunk.stream, "data": chunk.data, "ts": chunk.ts}
            yield sse_event(data, event="line", event_id=chunk.ts)

    def _reopen(self) -> None:
        self._close_stream()
        self._stream = self._open()

    def _close_stream(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def _why_it_ended(self) -> str | None:
        """The `end` event for a stream that ended by itself; None when it should go on."""
        if not self.follow:
            return ended("done", "The log was read to its end.", container=self.container)
        info = self.engine.inspect_container(self.container)
        if info.state == "running":
            return None  # it restarted between the end of the stream and this look
        if info.state == "removing":
            raise engine_errors.NotFound(f"container {self.container} is being removed")
        # A container created and never started has an exit code of 0 and nothing to say yet.
        exit_code = None if info.state == "created" else info.exit_code
        code = f" (exit code {exit_code})" if exit_code is not None else ""
        again = "; it restarts by its restart policy" if info.state == "restarting" else ""
        said = "has not been started" if info.state == "created" else f"stopped{code}{again}"
        return ended(
            "stopped",
            f"The container {said}.",
            container=self.container,
            state=info.state,
            exit_code=exit_code,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
