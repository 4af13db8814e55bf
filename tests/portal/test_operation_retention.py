"""Retention removes old finished operations and their logs in short batches, nothing else."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select, update

from portal.core.operations.models import Operation, OperationLogLine
from portal.core.operations.retention import prune_operations
from portal.core.timeutil import utcnow
from portal.extensions import db
from tests.support.fleet import seed_fleet
from tests.support.statements import counted_statements


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_old_finished_operations_go_in_batches_with_their_lines(any_db_app: Flask) -> None:
    seed_fleet(10, operations_per_host=2)  # 20 finished operations, 3 lines each
    old = list(db.session.scalars(select(Operation.id).order_by(Operation.id).limit(12)))
    long_ago = utcnow() - timedelta(days=45)
    db.session.execute(update(Operation).where(Operation.id.in_(old)).values(finished_at=long_ago))
    # An old operation that has not finished stays, whatever its age.
    db.session.execute(
        update(Operation)
        .where(Operation.id == old[0])
        .values(state="running", finished_at=long_ago)
    )
    db.session.commit()

    with counted_statements(db.engine) as seen:
        removed = prune_operations(batch=5)

    assert removed == 11
    assert count(Operation) == 9 and count(OperationLogLine) == 27
    assert db.session.get(Operation, old[0]).state == "running"
    deletes = [sql for sql in seen.sql if sql.startswith("DELETE")]
    assert len(deletes) == 6  # 3 batches (5, 5, 1): lines, then operations, each time
    assert prune_operations(batch=5) == 0
