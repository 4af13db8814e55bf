"""Run one operation in a worker: claim it, keep its lease, call its handler, record the end.

The claim is a conditional UPDATE, so a duplicate delivery of the same id (after recovery
re-enqueued it) finds nothing to claim and returns. The lease, renewed by one thread per
process, is how a dead worker is noticed: recovery takes over rows whose lease expired.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select, update

from portal.core.logging import request_id_bound
from portal.core.operations import service
from portal.core.operations.callbacks import owed_callback_values, schedule_callback
from portal.core.operations.kinds import (
    OperationCancelled,
    OperationContext,
    PermanentError,
    get_kind,
)
from portal.core.operations.log_buffer import LogBuffer
from portal.core.operations.models import (
    ACCEPTED,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Operation,
)
from portal.core.timeutil import utcnow
from portal.extensions import db

log = logging.getLogger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def run_operation(operation_id: str) -> None:
    """Execute one delivery of an operation, if it is still waiting to run."""
    operation = _claim(operation_id)
    if operation is None:
        return
    context = _context_for(operation)
    lease_keeper().track(operation_id, context.cancel_event)
    try:
        # What the handler calls (agents, ansible-runner) and logs carry the request's id.
        with request_id_bound(operation.request_id or f"op-{operation.id}"):
            _execute(operation, context)
    finally:
        lease_keeper().untrack(operation_id)
        db.session.remove()
    if operation.callback_url:
        schedule_callback(operation_id)


def _claim(operation_id: str) -> Operation | None:
    """Move the operation to running under this worker's lease, if it still waits to run."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["SPECTR_OPERATION_LEASE_SECONDS"])
    claimed = db.session.execute(
        update(Operation)
        .where(
            Operation.id == operation_id,
            Operation.state.in_((ACCEPTED, QUEUED)),
            or_(Operation.next_attempt_at.is_(None), Operation.next_attempt_at <= now),
        )
        .values(
            state=RUNNING,
            attempts=Operation.attempts + 1,
            started_at=now,
            lease_owner=WORKER_ID,
            lease_expires_at=now + lease,
            next_attempt_at=None,
        )
        .returning(Operation)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    db.session.commit()
    return claimed


def _context_for(operation: Operation) -> OperationContext:
    op_id = operation.id
    lines = LogBuffer(db.engine, op_id)

    def report_progress(fraction: float, message: str | None) -> None:
        with db.engine.begin() as conn:
            conn.execute(
                update(Operation)
                .where(Operation.id == op_id)
                .values(progress=fraction, progress_message=message)
            )

    return OperationContext(
        operation_id=op_id,
        kind=operation.kind,
        target=operation.target,
        params=dict(operation.params or {}),
        attempt=operation.attempts,
        max_attempts=operation.max_attempts,
        log_line=lines.append,
        report_progress=report_progress,
        flush_log=lines.flush,
    )


def _execute(operation: Operation, context: OperationContext) -> None:
    handler = get_kind(operation.kind).handler
    if operation.attempts > 1:
        context.log(f"Attempt {operation.attempts} of {operation.max_attempts}.")
    try:
        result = handler(context)
    except OperationCancelled:
        db.session.rollback()
        context.flush_log()
        _finish(operation.id, CANCELLED, error="Cancelled on request.")
    except Exception as exc:
        # The handler's transaction may hold a write lock (SQLite); let go before recording.
        db.session.rollback()
        _handle_failure(operation, context, exc)
    else:
        context.flush_log()
        _finish(operation.id, SUCCEEDED, result=result or {}, progress=1.0)


def _handle_failure(operation: Operation, context: OperationContext, exc: Exception) -> None:
    reason = describe_error(exc)
    if is_transient(exc) and operation.attempts < operation.max_attempts:
        delay = retry_delay(operation.attempts)
        context.log(f"Transient failure: {reason}. Retrying in {delay:.1f} s.", "warning")
        context.flush_log()
        _release_for_retry(operation.id, delay)
        service.enqueue_operation(operation.id, delay=delay)
        return
    if not isinstance(exc, PermanentError | ValueError) and not is_transient(exc):
        log.exception("operation %s (%s) failed unexpectedly", operation.id, operation.kind)
    if is_transient(exc):
        reason = f"{reason} (gave up after {operation.attempts} attempts)"
    context.log(f"Failed: {reason}", "error")
    context.flush_log()
    _finish(operation.id, FAILED, error=reason)


def describe_error(exc: Exception) -> str:
    """A sentence for a person: the exception's own text, or its type when it has none."""
    text = str(exc).strip()
    return text if text else exc.__class__.__name__


def is_transient(exc: BaseException) -> bool:
    """Decide whether retrying could help: network trouble and peers' 5xx, not bad input."""
    if isinstance(exc, PermanentError):
        return False
    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        return False
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, between half and all."""
    cfg = current_app.config
    ceiling = min(
        cfg["SPECTR_OPERATION_RETRY_BASE_SECONDS"] * 2 ** (attempt - 1),
        cfg["SPECTR_OPERATION_RETRY_MAX_SECONDS"],
    )
    return random.uniform(ceiling / 2, ceiling)


def _release_for_retry(operation_id: str, delay: float) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            update(Operation)
            .where(Operation.id == operation_id, Operation.lease_owner == WORKER_ID)
            .values(
                state=QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
            )
        )


def _finish(operation_id: str, state: str, **values: Any) -> None:
    """Record the end, unless another worker took the operation over meanwhile."""
    with db.engine.begin() as conn:
        conn.execute(
            update(Operation)
            .where(
                Operation.id == operation_id,
                Operation.state == RUNNING,
                Operation.lease_owner == WORKER_ID,
            )
            .values(
                state=state,
                finished_at=utcnow(),
                lease_owner=None,
                lease_expires_at=None,
                **owed_callback_values(),
                **values,
            )
        )


class LeaseKeeper:
    """One thread per worker process that renews the leases of the operations it runs."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def track(self, operation_id: str, cancel_event: threading.Event) -> None:
        with self._lock:
            self._running[operation_id] = cancel_event
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
                self._thread.start()

    def untrack(self, operation_id: str) -> None:
        with self._lock:
            self._running.pop(operation_id, None)

    def _loop(self) -> None:
        interval = self._app.config["SPECTR_OPERATION_LEASE_SECONDS"] / 3
        while not self._stop.wait(interval):
            with self._lock:
                running = dict(self._running)
            if running:
                with self._app.app_context():
                    self.renew(running)

    def renew(self, running: dict[str, threading.Event]) -> None:
        """Extend the leases of `running` and pass on any cancellation requests."""
        lease = timedelta(seconds=self._app.config["SPECTR_OPERATION_LEASE_SECONDS"])
        ids = list(running)
        owned = and_(Operation.id.in_(ids), Operation.lease_owner == WORKER_ID)
        try:
            with db.engine.begin() as conn:
                conn.execute(
                    update(Operation).where(owned).values(lease_expires_at=utcnow() + lease)
                )
                to_cancel = conn.scalars(
                    select(Operation.id).where(owned, Operation.cancel_requested.is_(True))
                ).all()
        except Exception:  # a database blip must not kill the keeper; the next tick retries
            log.exception("could not renew operation leases")
            return
        for operation_id in to_cancel:
            running[operation_id].set()


_keepers: dict[int, LeaseKeeper] = {}


def lease_keeper() -> LeaseKeeper:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    keeper = _keepers.get(id(app))
    if keeper is None:
        keeper = _keepers[id(app)] = LeaseKeeper(app)
    return keeper
