"""The recovery promise with real processes: Postgres, Redis and `spectr worker` processes.

A worker killed with SIGKILL mid-operation, and a Redis that restarts empty, must not lose
any operation: the rows in Postgres carry them to an end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from portal.app import create_app
from portal.core.operations import service
from portal.core.operations.callbacks import owed_callback_values
from portal.core.operations.models import Operation
from portal.core.timeutil import utcnow
from portal.extensions import db
from proxy.tests.redis_server import RedisServer
from tests.portal.conftest import _test_config
from tests.support.workers import stop_workers

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
SPECTR = str(Path(sys.executable).with_name("spectr"))


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def cluster(tmp_path, postgres_migrated):
    """Config shared by this test and its worker processes, plus helpers to run workers."""
    redis = RedisServer().start()
    settings = {
        "SPECTR_REDIS_URL": redis.url,
        "SPECTR_QUEUE_NAME": f"spectr-test-{uuid.uuid4().hex[:8]}",
        "SPECTR_OPERATION_LEASE_SECONDS": 2,
        "SPECTR_RECOVERY_INTERVAL_SECONDS": 0.5,
        "SPECTR_OPERATION_REQUEUE_AFTER_SECONDS": 2,
        "SPECTR_CALLBACK_TIMEOUT_SECONDS": 2,
    }
    config = _test_config(tmp_path, postgres_migrated, SPECTR_QUEUE_IMMEDIATE=False, **settings)
    app = create_app(config)
    env = {**os.environ, **{k: str(v) for k, v in config.items() if k.startswith("SPECTR_")}}
    env.pop("SPECTR_QUEUE_IMMEDIATE")
    workers: list[subprocess.Popen] = []
    logs = []

    def start_worker() -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(workers)}.log", "w")  # noqa: SIM115 - closed below
        logs.append(log)
        proc = subprocess.Popen(
            [SPECTR, "worker", "--threads", "2"], env=env, stdout=log, stderr=log
        )
        workers.append(proc)
        return proc

    with app.app_context():
        yield app, redis, start_worker
        db.session.remove()
        db.engine.dispose()
    stop_workers(workers)
    for log in logs:
        log.close()
    redis.stop()


def _reload(operation_id: str) -> Operation:
    db.session.rollback()
    db.session.expire_all()  # objects committed without expiring (create_operation) reload too
    return db.session.get(Operation, operation_id)


def _wait_final(operation_id: str, timeout: float = 60) -> Operation:
    _wait_for(lambda: _reload(operation_id).is_final, timeout, f"operation {operation_id} to end")
    return _reload(operation_id)


def test_operation_survives_a_worker_killed_with_sigkill(cluster):
    _, _, start_worker = cluster
    worker = start_worker()
    operation, _ = service.create_operation("sleep", {"seconds": 4})
    _wait_for(lambda: len(service.read_log(operation.id)) >= 2, 30, "the first log lines")
    assert _reload(operation.id).state == "running"

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert _reload(operation.id).state == "running"  # nobody knows yet: the lease runs on
    start_worker()

    finished = _wait_final(operation.id)
    assert finished.state == "succeeded"
    assert finished.attempts == 2
    messages = [line.message for line in service.read_log(operation.id)]
    assert any(
        m.startswith("Worker ") and m.endswith("was lost; running the operation again.")
        for m in messages
    )
    assert messages[-1] == "slept 4.00 of 4 s"


def test_operations_survive_a_redis_restart(cluster):
    _, redis, start_worker = cluster
    queued = [service.create_operation("noop")[0].id for _ in range(5)]
    assert {_reload(op_id).state for op_id in queued} == {"queued"}

    redis.stop()  # the queue and everything in it is gone
    while_down = [service.create_operation("noop")[0].id for _ in range(2)]
    assert {_reload(op_id).state for op_id in while_down} == {"accepted"}  # the push failed
    redis.start()  # back, empty
    start_worker()

    for op_id in queued + while_down:
        assert _wait_final(op_id).state == "succeeded"


def test_a_callback_owed_when_the_worker_died_is_sent_by_recovery(cluster, receiver):
    """The state a SIGKILL leaves between the final UPDATE and the enqueue of the callback."""
    _, _, start_worker = cluster
    hook = receiver()
    operation, _ = service.create_operation("noop", callback_url=hook.url)
    db.session.execute(
        update(Operation)
        .where(Operation.id == operation.id)
        .values(state="succeeded", finished_at=utcnow(), **owed_callback_values())
    )
    db.session.commit()
    assert _reload(operation.id).callback_state == "pending"  # and nothing is queued for it

    start_worker()
    _wait_for(lambda: _reload(operation.id).callback_state == "delivered", 30, "the callback")
    assert [json.loads(body)["id"] for _, body in hook.received] == [operation.id]
    assert hook.received[0][0]["X-Spectr-Delivery-Attempt"] == "1"


def test_every_callback_arrives_while_workers_are_killed(cluster, receiver):
    """Operations with callbacks under repeated SIGKILLs: each one ends and is called back."""
    _, _, start_worker = cluster
    hook = receiver()
    ids = [
        service.create_operation("sleep", {"seconds": 0.5}, callback_url=hook.url)[0].id
        for _ in range(24)
    ]
    workers = [start_worker(), start_worker()]
    kills = 0
    deadline = time.monotonic() + 20
    while kills < 4 or (time.monotonic() < deadline and not all(_reload(i).is_final for i in ids)):
        time.sleep(random.uniform(0.6, 1.5))
        victim = workers.pop(random.randrange(len(workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        workers.append(start_worker())

    _wait_for(
        lambda: all(_reload(i).callback_state == "delivered" for i in ids), 90, "every callback"
    )
    called_back = {json.loads(body)["id"] for _, body in hook.received}
    assert called_back == set(ids)  # at least once each; a duplicate is allowed, a loss is not
    finals = {json.loads(body)["id"]: json.loads(body)["state"] for _, body in hook.received}
    assert all(finals[i] == _reload(i).state for i in ids)
