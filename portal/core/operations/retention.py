"""Retention: finished operations older than `operation_log_retention_days` go, with their logs.

A million log lines are not deleted in one statement: that would hold its locks and its undo
for as long as it runs, and a long DELETE holds back vacuum. Each batch of BATCH operations
is its own short transaction (their lines first, then the rows), so the API's reads and the
workers' writes of other operations never wait on it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from portal.core.operations.models import FINAL_STATES, Operation, OperationLogLine
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.settings.service import get_setting

log = logging.getLogger(__name__)
BATCH = 500


def prune_operations(batch: int = BATCH, max_batches: int | None = None) -> int:
    """Delete finished operations past the retention, in batches; return how many went."""
    cutoff = utcnow() - timedelta(days=int(get_setting("operation_log_retention_days")))
    removed = batches = 0
    while max_batches is None or batches < max_batches:
        ids = list(
            db.session.scalars(
                select(Operation.id)
                .where(Operation.finished_at < cutoff, Operation.state.in_(FINAL_STATES))
                .limit(batch)
            )
        )
        db.session.rollback()  # nothing stays open between batches
        if not ids:
            break
        with db.engine.begin() as conn:
            conn.execute(delete(OperationLogLine).where(OperationLogLine.operation_id.in_(ids)))
            conn.execute(delete(Operation).where(Operation.id.in_(ids)))
        removed += len(ids)
        batches += 1
    if removed:
        log.info("operation retention: removed %s operations finished before %s", removed, cutoff)
    return removed
