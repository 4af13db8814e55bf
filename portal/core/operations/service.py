"""Create, enqueue, query, cancel operations and read their logs.

The API answers 202 as soon as the row is committed; the queue only carries the row's id, and
the row, not the queue, is the truth: `recovery` re-enqueues whatever the queue lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import current_app, has_request_context
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import True_

from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, ValidationFailed
from portal.core.operations.kinds import get_kind
from portal.core.operations.models import (
    ACCEPTED,
    ACTIVE_STATES,
    CALLBACK_PENDING,
    CANCELLED,
    QUEUED,
    RUNNING,
    Operation,
    OperationLogLine,
)
from portal.core.security import Principal, current_principal
from portal.core.timeutil import utcnow
from portal.extensions import commit_keeping_loaded, db, queue
from portal.projects.access import (
    ProjectFilter,
    acted_project_id,
    checked_in_project,
    every_project,
    project_clause,
)

log = logging.getLogger(__name__)


def create_operation(
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    target: str | None = None,
    requested_by: Principal | None = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    max_attempts: int | None = None,
    request_id: str | None = None,
    project_id: int | None = None,
) -> tuple[Operation, bool]:
    """Record an operation and hand it to the queue; return it and whether it is new.

    Without `project_id`, it belongs to the one project this request was found to act in
    (`checked` notes it), or to none: the fleet's own work."""
    operation_kind = get_kind(kind)
    params = operation_kind.validate(params or {}) if operation_kind.validate else (params or {})
    user_id = requested_by.user_id if requested_by else None
    now = utcnow()
    if idempotency_key:
        existing = _find_by_idempotency_key(user_id, idempotency_key)
        if existing is not None:
            return _same_request_or_conflict(existing, kind, params), False
    if project_id is None and has_request_context():
        project_id = acted_project_id()
    operation = Operation(
        id=str(uuid.uuid4()),
        kind=kind,
        target=target,
        project_id=project_id,
        requested_by_id=user_id,
        params=params,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        max_attempts=max_attempts or current_app.config["SPECTR_OPERATION_MAX_ATTEMPTS"],
        request_id=request_id,
        # Recorded as queued in the same commit: the push right after it is the queue step,
        # and a failed push sets the row back to accepted for recovery to pick up.
        state=QUEUED,
        created_at=now,
        queued_at=now,
    )
    operation.requester_name_hint = requested_by.username if requested_by else None
    db.session.add(operation)
    record_audit(
        "operation.create",
        f"operation:{operation.id}",
        details={"kind": kind, "target": target},
        project_id=project_id,
    )
    try:
        commit_keeping_loaded()
    except IntegrityError:
        db.session.rollback()
        existing = _find_by_idempotency_key(user_id, idempotency_key)
        if existing is None:
            raise
        return _same_request_or_conflict(existing, kind, params), False
    _push(operation.id)
    return operation, True


def _find_by_idempotency_key(user_id: int | None, key: str | None) -> Operation | None:
    return db.session.scalar(
        select(Operation).filter_by(requested_by_id=user_id, idempotency_key=key)
    )


def _same_request_or_conflict(existing: Operation, kind: str, params: dict) -> Operation:
    if existing.kind != kind or existing.params != params:
        raise Conflict(
            "This Idempotency-Key was already used for a different request.",
            {"operation_id": existing.id},
        )
    return existing


def enqueue_operation(operation_id: str, delay: float | None = None) -> None:
    """Mark a waiting operation queued again and put its id on the task queue."""
    with db.engine.begin() as conn:
        conn.execute(
            update(Operation)
            .where(Operation.id == operation_id, Operation.state.in_((ACCEPTED, QUEUED)))
            .values(state=QUEUED, queued_at=utcnow())
        )
    _push(operation_id, delay)


def _push(operation_id: str, delay: float | None = None) -> bool:
    """Put an operation's id on the task queue; on failure leave it to recovery."""
    from portal.core.operations.tasks import execute_operation

    try:
        queue.submit(execute_operation, operation_id, delay=delay)
        return True
    except Exception:  # the queue is down: the row stays, and recovery re-enqueues it
        log.warning("could not enqueue operation %s; recovery will retry", operation_id)
        with db.engine.begin() as conn:
            conn.execute(
                update(Operation)
                .where(Operation.id == operation_id, Operation.state == QUEUED)
                .values(state=ACCEPTED)
            )
        return False


def get_operation(operation_id: str) -> Operation:
    operation = db.session.get(Operation, operation_id)
    if operation is None:
        raise NotFound(f"No operation with id '{operation_id}'.")
    return operation


def visible_operation(operation_id: str, needed: str = "viewer") -> Operation:
    """The operation, if the caller has `needed` in its project (none: `default`): 404 like a
    missing one when the caller cannot see that project, 403 when its role there is lower.
    Whoever started an operation may always read it (a sleep started outside `default`)."""
    operation = get_operation(operation_id)
    principal = current_principal()
    if needed == "viewer" and principal and operation.requested_by_id == principal.user_id:
        return operation
    missing = f"No operation with id '{operation_id}'."
    return checked_in_project(operation, operation.project_id, needed, missing)


def visible_operations(column: Any) -> Any:
    """The ProjectFilter of operation lists: those of the caller's projects, and those the
    caller started."""
    clause = project_clause(column)
    principal = current_principal()
    if isinstance(clause, True_) or principal is None:
        return clause
    return or_(clause, Operation.requested_by_id == principal.user_id)


def list_operations(
    *,
    state: str | None = None,
    kind: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    within: ProjectFilter = every_project,
) -> Any:
    """Return a select() of operations, newest first, filtered as asked, of the projects
    `within` lets by."""
    query = select(Operation).order_by(Operation.created_at.desc(), Operation.id)
    query = query.where(within(Operation.project_id))
    if state:
        query = query.where(Operation.state == state)
    if kind:
        query = query.where(Operation.kind == kind)
    if target:
        query = query.where(Operation.target == target)
    if since:
        query = query.where(Operation.created_at >= since)
    return query


def cancel_operation(operation_id: str) -> Operation:
    """Cancel a waiting operation at once, or ask a running one to stop."""
    operation = get_operation(operation_id)
    if operation.state not in ACTIVE_STATES:
        raise Conflict(f"Operation {operation_id} already ended ({operation.state}).")
    if operation.state == RUNNING:
        operation.cancel_requested = True
        append_log(operation_id, "Cancellation requested; waiting for the worker to stop.")
    else:
        operation.state = CANCELLED
        operation.finished_at = utcnow()
        operation.error = "Cancelled before it started."
        if operation.callback_url:
            operation.callback_state, operation.callback_due_at = CALLBACK_PENDING, utcnow()
    record_audit("operation.cancel", f"operation:{operation_id}")
    db.session.commit()
    if operation.callback_state == CALLBACK_PENDING:
        from portal.core.operations.callbacks import schedule_callback

        schedule_callback(operation_id)
    return operation


def append_log(operation_id: str, message: str, level: str = "info") -> None:
    """Append one line to an operation's log, in its own short transaction."""
    with db.engine.begin() as conn:
        conn.execute(
            insert(OperationLogLine).values(
                operation_id=operation_id, message=message, level=level, at=utcnow()
            )
        )


def read_log(operation_id: str, after_id: int = 0, limit: int = 1000) -> list[OperationLogLine]:
    """Return log lines with id greater than `after_id`, oldest first."""
    get_operation(operation_id)
    return list(
        db.session.scalars(
            select(OperationLogLine)
            .where(OperationLogLine.operation_id == operation_id, OperationLogLine.id > after_id)
            .order_by(OperationLogLine.id)
            .limit(limit)
        )
    )


def follow_log(
    operation_id: str, after_id: int = 0, poll_seconds: float = 0.5
) -> Iterator[tuple[list[OperationLogLine], Operation, bool]]:
    """Poll an operation: yield (new log lines, the operation, whether this is the last poll)
    until it has ended and every line of its log has been yielded.

    The state is read before the lines: a worker commits each line before the state that ends
    the operation, so the lines read after an ended state are all there are. (Read the other
    way round, a last line written between the two reads was lost: CI's `spectr models import`
    ended without its "Stored in" line.)
    """
    while True:
        db.session.rollback()  # see rows the worker committed since the last poll
        db.session.expire_all()
        operation = get_operation(operation_id)
        ended = operation.is_final
        lines = read_log(operation_id, after_id)
        if lines:
            after_id = lines[-1].id
        yield lines, operation, ended and not lines
        if ended and not lines:
            return
        if not ended:
            time.sleep(poll_seconds)


def require_creatable_kind(kind: str) -> None:
    """Refuse kinds that only their own context may create."""
    if not get_kind(kind).creatable:
        raise ValidationFailed(
            f"Operations of kind '{kind}' are created through their own endpoint.",
            {"kind": [f"'{kind}' cannot be created directly."]},
        )
