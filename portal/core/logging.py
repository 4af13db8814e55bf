"""Structured JSON logs, one object per line, with the request id when there is one.

The request id is the caller's `X-Request-ID` (or one the portal made) while a request is
served, and the id recorded on the operation while a worker runs it. `current_request_id()`
gives it to what the portal calls next (agents, ansible-runner), so one id can be followed
through every component's log.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, g, has_app_context, has_request_context

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_bound_request_id: ContextVar[str | None] = ContextVar("spectr_request_id", default=None)


def current_request_id() -> str | None:
    """Return the id of the operation being run, else of the request being served, or None."""
    bound = _bound_request_id.get()
    if bound is not None:
        return bound
    if has_app_context() and has_request_context():
        return g.get("request_id")
    return None


@contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Make request_id the current one for this thread's work inside the block."""
    token = _bound_request_id.set(request_id)
    try:
        yield
    finally:
        _bound_request_id.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(app: Flask) -> None:
    """Send the portal's logs to stderr as JSON lines at SPECTR_LOG_LEVEL."""
    root = logging.getLogger("portal")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(str(app.config["SPECTR_LOG_LEVEL"]).upper())
