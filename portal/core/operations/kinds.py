"""The registry of operation kinds and what a handler gets to work with.

A bounded context declares its long actions with `@operation_kind("deploy_app")`; the runner
looks the handler up by the row's kind. Handlers raise `TransientError` for failures worth
retrying (peer down, timeout) and `PermanentError` for ones that are not (bad input).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portal.core.errors import SpectrError


class TransientError(Exception):
    """A failure that may pass: the operation is retried with backoff."""

    transient = True


class PermanentError(Exception):
    """A failure that will not pass by retrying: the operation fails at once."""


class OperationCancelled(Exception):
    """Raised inside a handler when a person asked to cancel the operation."""


Handler = Callable[["OperationContext"], dict[str, Any] | None]


@dataclass(frozen=True)
class OperationKind:
    name: str
    handler: Handler
    creatable: bool  # may be created directly through POST /api/v1/operations
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None = None


_KINDS: dict[str, OperationKind] = {}


def operation_kind(
    name: str,
    *,
    creatable: bool = False,
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Callable[[Handler], Handler]:
    """Register `handler` as the worker code for operations of kind `name`."""

    def register(handler: Handler) -> Handler:
        _KINDS[name] = OperationKind(name, handler, creatable, validate)
        return handler

    return register


def get_kind(name: str) -> OperationKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise SpectrError(f"Unknown operation kind '{name}'.") from None


def kind_names(creatable_only: bool = False) -> list[str]:
    return sorted(name for name, kind in _KINDS.items() if kind.creatable or not creatable_only)


@dataclass
class OperationContext:
    """What a handler sees: its parameters, a log, progress, and cancellation."""

    operation_id: str
    kind: str
    target: str | None
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    log_line: Callable[[str, str], None]
    report_progress: Callable[[float, str | None], None]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    # Writes lines the log still holds back (they go in batches); the runner calls it.
    flush_log: Callable[[], None] = lambda: None

    def log(self, message: str, level: str = "info") -> None:
        """Append a line to the operation's log."""
        self.log_line(message, level)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress between 0 and 1, with an optional short message."""
        self.report_progress(min(max(fraction, 0.0), 1.0), message)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise OperationCancelled()

    def wait(self, seconds: float) -> None:
        """Sleep, waking early (and raising) if the operation is cancelled."""
        if self.cancel_event.wait(seconds):
            raise OperationCancelled()
