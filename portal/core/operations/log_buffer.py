"""An operation's log lines written in batches, so a chatty handler does not pay a commit a line.

A bootstrap fanned out to many hosts produces thousands of ansible-runner events; one INSERT
and commit per line held ingestion at about a hundred lines a second on Postgres. Lines wait
here at most MAX_DELAY_S (readers following the log see them that much later) or until
MAX_LINES are waiting, then go in one multi-row INSERT. The runner flushes before it records
an operation's end, so a follower never sees the final state before the last lines.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.engine import Engine

from portal.core.bulk import insert_rows
from portal.core.operations.models import OperationLogLine
from portal.core.timeutil import utcnow

log = logging.getLogger(__name__)


class LogBuffer:
    """Collects one operation's log lines and writes them in order, in batches."""

    MAX_LINES = 500
    MAX_DELAY_S = 0.2

    def __init__(self, engine: Engine, operation_id: str) -> None:
        self._engine = engine
        self._operation_id = operation_id
        self._lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _lines and _timer
        self._writing = threading.Lock()  # one batch at a time, so lines keep their order
        self._timer: threading.Timer | None = None

    def append(self, message: str, level: str = "info") -> None:
        """Queue one line; write the batch now when it is full."""
        line = {
            "operation_id": self._operation_id,
            # Postgres refuses NUL in text; one such line must not lose its whole batch.
            "message": message.replace("\0", "\ufffd"),
            "level": level,
            "at": utcnow(),
        }
        with self._lock:
            self._lines.append(line)
            full = len(self._lines) >= self.MAX_LINES
            if not full and self._timer is None:
                self._timer = threading.Timer(self.MAX_DELAY_S, self._flush_quietly)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every waiting line now (before the operation's end is recorded)."""
        with self._writing:
            with self._lock:
                lines, self._lines = self._lines, []
                timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
            if lines:
                with self._engine.begin() as conn:
                    insert_rows(conn, OperationLogLine.__table__, lines)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # a database blip: the lines are lost, the operation goes on
            log.exception("could not write log lines of operation %s", self._operation_id)
