"""Find operations that the queue or a worker lost, and put them back on track.

huey has no acknowledgements: a task whose worker was killed, or that sat in a Redis that
restarted, is simply gone. The operation row still says where it was, so this sweep (run by
every worker's ticker, idempotent) re-enqueues waiting rows, takes over expired leases and
re-sends overdue callbacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from portal.core.operations import service
from portal.core.operations.callbacks import (
    owed_callback_values,
    redeliver_due_callbacks,
    schedule_callback,
)
from portal.core.operations.models import ACCEPTED, FAILED, QUEUED, RUNNING, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    requeued: int = 0
    resumed: int = 0
    failed: int = 0
    callbacks: int = 0


def recover_operations() -> RecoveryReport:
    """Re-enqueue stale waiting operations and take over those whose worker died."""
    report = RecoveryReport()
    report.requeued = _requeue_stale_waiting()
    report.resumed, report.failed = _take_over_expired_leases()
    report.callbacks = redeliver_due_callbacks(
        current_app.config["SPECTR_OPERATION_REQUEUE_AFTER_SECONDS"]
    )
    if report.requeued or report.resumed or report.failed or report.callbacks:
        log.info("operation recovery: %s", report)
    return report


def _requeue_stale_waiting() -> int:
    grace = timedelta(seconds=current_app.config["SPECTR_OPERATION_REQUEUE_AFTER_SECONDS"])
    cutoff = utcnow() - grace
    stale = db.session.scalars(
        select(Operation.id)
        .where(
            Operation.state.in_((ACCEPTED, QUEUED)),
            Operation.cancel_requested.is_(False),
            or_(Operation.queued_at.is_(None), Operation.queued_at < cutoff),
            or_(Operation.next_attempt_at.is_(None), Operation.next_attempt_at < cutoff),
            Operation.created_at < cutoff,
        )
        .limit(1000)
    ).all()
    db.session.rollback()
    for operation_id in stale:
        service.enqueue_operation(operation_id)
    return len(stale)


def _take_over_expired_leases() -> tuple[int, int]:
    now = utcnow()
    expired = db.session.execute(
        select(Operation.id, Operation.attempts, Operation.max_attempts, Operation.lease_owner)
        .where(Operation.state == RUNNING, Operation.lease_expires_at < now)
        .limit(1000)
    ).all()
    db.session.rollback()
    resumed = failed = 0
    for operation_id, attempts, max_attempts, owner in expired:
        still_expired = and_(
            Operation.id == operation_id,
            Operation.state == RUNNING,
            Operation.lease_owner == owner,
            Operation.lease_expires_at < now,
        )
        if attempts < max_attempts:
            if _transition(still_expired, state=QUEUED, lease_owner=None, lease_expires_at=None):
                service.append_log(
                    operation_id,
                    f"Worker {owner} was lost; running the operation again.",
                    "warning",
                )
                service.enqueue_operation(operation_id)
                resumed += 1
        elif _transition(
            still_expired,
            state=FAILED,
            finished_at=now,
            lease_owner=None,
            error=f"Worker lost: {owner} stopped while running it, after {attempts} attempts.",
            **owed_callback_values(),
        ):
            service.append_log(operation_id, "Worker lost; no attempts left.", "error")
            schedule_callback(operation_id)
            failed += 1
    return resumed, failed


def _transition(condition: object, **values: object) -> bool:
    with db.engine.begin() as conn:
        return conn.execute(update(Operation).where(condition).values(**values)).rowcount == 1
