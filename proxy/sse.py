"""Incremental Server-Sent Events parsing: events out of a byte stream cut at any byte."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The SSE spec ends a line with CRLF, LF or CR, and a stream may mix them (sse-starlette sends
# CRLF, most model servers LF).
LINE_END = re.compile(rb"\r\n|\r|\n")
# A line longer than this is dropped rather than held: a replica that never ends a line must not
# make the proxy hold its whole answer.
MAX_LINE = 4 * 1024 * 1024


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its data lines joined by LF, and where it ended in its chunk."""

    data: bytes
    end: int


class SseParser:
    """Turn chunks of an event stream into events, keeping only the line not yet ended.

    Each byte is scanned once (the unfinished tail is kept as pieces and joined only when its
    line ends), so a stream costs time linear in its length, whatever its framing or chunking.
    Only `data` fields matter here; `event`, `id`, `retry` and comments are skipped.
    """

    def __init__(self) -> None:
        self._partial: list[bytes] = []
        self._partial_len = 0
        self._discarding = False
        self._data: list[bytes] = []
        # The previous chunk ended in CR: an LF opening this one is the rest of that CRLF.
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Read a chunk; return the events it completed."""
        if not chunk:
            return []
        start = 1 if self._after_cr and chunk[:1] == b"\n" else 0
        self._after_cr = chunk[-1:] == b"\r"
        events: list[SseEvent] = []
        for match in LINE_END.finditer(chunk, start):
            line = chunk[start : match.start()]
            start = match.end()
            if self._partial or self._discarding:
                line = self._finish_partial(line)
                if line is None:
                    continue
            if line:
                self._field(line)
            elif self._data:
                events.append(SseEvent(b"\n".join(self._data), start))
                self._data = []
        if start < len(chunk):
            self._keep_partial(chunk[start:])
        return events

    def _field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value[:1] == b" " else value)

    def _keep_partial(self, piece: bytes) -> None:
        self._partial_len += len(piece)
        if self._partial_len > MAX_LINE:
            self._partial.clear()
            self._discarding = True
        elif not self._discarding:
            self._partial.append(piece)

    def _finish_partial(self, end: bytes) -> bytes | None:
        """Return the whole line that `end` finishes, or None when it was too long to keep."""
        line = None if self._discarding else b"".join(self._partial) + end
        self._partial.clear()
        self._partial_len = 0
        self._discarding = False
        return line
