"""An operation's log is written in batches: thousands of lines in a few statements, in order,
visible to a reader within a fraction of a second, all of them before the operation ends; a
follower of the log gets every line, the last ones too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from portal.automation.provisioner import EventCollector
from portal.core.operations import kinds, runner, service
from portal.core.operations.models import Operation, OperationLogLine
from portal.extensions import db
from tests.support.statements import counted_statements

KIND = "test.chatty"
RELEASE = threading.Event()


@pytest.fixture
def chatty_kind() -> Iterator[str]:
    """A kind whose handler writes `lines` lines, then waits for RELEASE if asked to."""

    def handler(context: kinds.OperationContext) -> dict:
        for number in range(context.params["lines"]):
            context.log(f"line {number}")
        if context.params.get("wait"):
            RELEASE.wait(10)
        return {}

    kinds.operation_kind(KIND)(handler)
    RELEASE.clear()
    yield KIND
    RELEASE.set()
    kinds._KINDS.pop(KIND, None)


def test_thousands_of_lines_go_in_a_few_statements_in_order(
    any_db_app: Flask, chatty_kind: str
) -> None:
    with counted_statements(db.engine) as seen:
        operation, _ = service.create_operation(chatty_kind, {"lines": 2000})

    lines = service.read_log(operation.id, limit=5000)
    assert [line.message for line in lines] == [f"line {n}" for n in range(2000)]
    assert db.session.scalar(select(Operation.state).filter_by(id=operation.id)) == "succeeded"
    inserts = [sql for sql in seen.sql if sql.startswith("INSERT INTO operation_log_lines")]
    # 500 lines a statement, not one each (on Postgres a COPY, which no statement event sees).
    assert len(inserts) <= 6


def test_a_reader_sees_lines_while_the_handler_still_runs(app: Flask, chatty_kind: str) -> None:
    operation = Operation(id="00000000-0000-0000-0000-00000000c4a7", kind=chatty_kind,
                          state="queued", params={"lines": 3, "wait": True})  # fmt: skip
    db.session.add(operation)
    db.session.commit()
    worker = threading.Thread(target=_run_in_app, args=(app, operation.id), daemon=True)
    worker.start()
    started = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - started < 5 and len(seen) < 3:
        seen = [line.message for line in service.read_log(operation.id)]
        db.session.rollback()
        time.sleep(0.05)
    waited = time.monotonic() - started
    state_meanwhile = db.session.scalar(select(Operation.state).filter_by(id=operation.id))
    RELEASE.set()
    worker.join(10)

    assert seen == ["line 0", "line 1", "line 2"] and state_meanwhile == "running"
    assert waited < 2.0  # held back at most 0.2 s, not until the end


def test_a_follower_gets_the_last_lines_written_as_the_operation_ended(
    any_db_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker flushes its last line and ends the operation between a follower's reads of
    one poll (as it did under CI's load: `spectr models import` printed no "Stored in")."""
    operation = Operation(id="00000000-0000-0000-0000-00000000f011", kind="noop",
                          state="running", params={})  # fmt: skip
    db.session.add(operation)
    db.session.commit()
    read_log, ended = service.read_log, threading.Event()

    def read_then_the_worker_ends(operation_id: str, after_id: int = 0, limit: int = 1000) -> list:
        lines = read_log(operation_id, after_id, limit)
        if not ended.is_set():
            service.append_log(operation_id, "Stored in the registry")
            with db.engine.begin() as conn:
                conn.execute(update(Operation).filter_by(id=operation_id).values(state="succeeded"))
            ended.set()
        return lines

    monkeypatch.setattr(service, "read_log", read_then_the_worker_ends)
    polls = list(service.follow_log(operation.id, poll_seconds=0))

    assert [line.message for lines, _, _ in polls for line in lines] == ["Stored in the registry"]
    assert [last for _, _, last in polls] == [False] * (len(polls) - 1) + [True]
    assert polls[-1][1].state == "succeeded"


def _run_in_app(app: Flask, operation_id: str) -> None:
    with app.app_context():
        runner.run_operation(operation_id)


def test_ansible_events_stream_into_the_log_through_the_collector(
    any_db_app: Flask,
) -> None:
    operation = Operation(id="00000000-0000-0000-0000-0000000ea7e5", kind="noop", state="running",
                          params={})  # fmt: skip
    db.session.add(operation)
    db.session.commit()
    context = runner._context_for(operation)
    collector = EventCollector(context.log, None)
    events = [{"event": "playbook_on_task_start", "event_data": {"task": "Install Docker"}}]
    events += [
        {"event": "runner_on_ok", "event_data": {"host": f"h{n}", "task": "Install Docker",
                                                 "res": {"changed": n % 2 == 0}}}
        for n in range(1200)
    ]  # fmt: skip

    with counted_statements(db.engine) as seen:
        for event in events:
            collector.handle(event)
        context.flush_log()

    stored = db.session.scalar(
        select(func.count()).where(OperationLogLine.operation_id == operation.id)
    )
    assert stored == 1201
    assert service.read_log(operation.id, limit=2)[1].message == "changed: [h0]"
    assert len(seen) <= 4
