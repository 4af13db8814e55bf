"""Operations that wait in a real (SQLite huey) queue: cancel, and recovery from the row."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.app import create_app
from portal.core.operations import service
from portal.core.operations.models import Operation
from portal.core.operations.recovery import recover_operations
from portal.core.timeutil import utcnow
from portal.extensions import db, queue
from tests.portal.conftest import ApiClient, _test_config


@pytest.fixture
def queued_app(tmp_path, sqlite_template):
    """The embedded default: a SQLite huey queue with no consumer, so work stays queued."""
    shutil.copy(sqlite_template, tmp_path / "spectr.db")
    app = create_app(
        _test_config(tmp_path, f"sqlite:///{tmp_path / 'spectr.db'}", SPECTR_QUEUE_IMMEDIATE=False)
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def operator(queued_app):
    from portal.admin import service as admin

    user = admin.create_user("op", "correct horse battery", "operator")
    _, token = admin.create_token(user, "t", 1)
    return ApiClient(queued_app.test_client(), token)


def test_waiting_operation_is_queued_and_cancels_at_once(operator):
    op = operator.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    assert op["state"] == "queued"
    assert queue.pending_count() == 1
    cancelled = operator.post(f"/api/v1/operations/{op['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.get_json()["state"] == "cancelled"
    # The queued delivery finds nothing to claim when a worker picks it up.
    queue.execute(queue.dequeue())
    assert db.session.get(Operation, op["id"]).state == "cancelled"


def test_a_worker_runs_the_queued_delivery(operator):
    op = operator.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    queue.execute(queue.dequeue())
    db.session.expire_all()
    assert db.session.get(Operation, op["id"]).state == "succeeded"


def test_duplicate_deliveries_run_the_operation_once(operator):
    op = operator.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    service.enqueue_operation(op["id"])  # what recovery does when it thinks the queue lost it
    assert queue.pending_count() == 2
    queue.execute(queue.dequeue())
    queue.execute(queue.dequeue())
    db.session.expire_all()
    operation = db.session.get(Operation, op["id"])
    assert (operation.state, operation.attempts) == ("succeeded", 1)


def test_recovery_requeues_operations_the_queue_lost(operator, queued_app):
    op = operator.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    queue.flush()  # the queue forgets (as after a Redis restart); the row remembers
    _age(op["id"], seconds=queued_app.config["SPECTR_OPERATION_REQUEUE_AFTER_SECONDS"] + 1)
    assert recover_operations().requeued == 1
    queue.execute(queue.dequeue())
    db.session.expire_all()
    assert db.session.get(Operation, op["id"]).state == "succeeded"


def test_recovery_leaves_fresh_waiting_operations_alone(operator):
    operator.post("/api/v1/operations", json={"kind": "noop"})
    assert recover_operations().requeued == 0


def test_recovery_reruns_operations_of_a_dead_worker(operator):
    op = operator.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    queue.flush()
    _mark_running_with_expired_lease(op["id"], attempts=1)
    report = recover_operations()
    assert report.resumed == 1
    queue.execute(queue.dequeue())
    db.session.expire_all()
    operation = db.session.get(Operation, op["id"])
    assert (operation.state, operation.attempts) == ("succeeded", 2)
    messages = [line.message for line in service.read_log(op["id"])]
    assert "Worker dead-host:1 was lost; running the operation again." in messages


def test_recovery_fails_a_lost_operation_without_attempts_left(operator):
    op = operator.post("/api/v1/operations", json={"kind": "noop", "max_attempts": 1}).get_json()
    queue.flush()
    _mark_running_with_expired_lease(op["id"], attempts=1)
    assert recover_operations().failed == 1
    db.session.expire_all()
    operation = db.session.get(Operation, op["id"])
    assert operation.state == "failed"
    assert operation.error.startswith("Worker lost: dead-host:1 stopped while running it")


def test_cancel_of_a_running_operation_is_requested(operator):
    op = operator.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    _mark_running_with_expired_lease(op["id"], attempts=1, expired=False)
    response = operator.post(f"/api/v1/operations/{op['id']}/cancel").get_json()
    assert response["state"] == "running"
    assert response["cancel_requested"] is True


def _age(operation_id: str, seconds: float) -> None:
    past = utcnow() - timedelta(seconds=seconds)
    with db.engine.begin() as conn:
        conn.execute(
            update(Operation)
            .where(Operation.id == operation_id)
            .values(created_at=past, queued_at=past)
        )


def _mark_running_with_expired_lease(
    operation_id: str, attempts: int, expired: bool = True
) -> None:
    lease_end = utcnow() + timedelta(seconds=-5 if expired else 60)
    with db.engine.begin() as conn:
        conn.execute(
            update(Operation)
            .where(Operation.id == operation_id)
            .values(
                state="running",
                attempts=attempts,
                lease_owner="dead-host:1",
                lease_expires_at=lease_end,
            )
        )
