"""The hot queries of a large fleet have the indexes they need: EXPLAIN on the real Postgres.

Each query is the statement the code sends (built by the same functions). The planner is told
to avoid sequential and bitmap scans, so it uses an index wherever one serves the query; a
plan that still scans the table, or sorts what an index should give in order, names the
missing index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from portal.apps.service import apps_query
from portal.core.operations.models import Operation, OperationLogLine
from portal.core.operations.service import list_operations
from portal.extensions import db
from portal.hosts.models import HostContainer, HostStatusChange
from portal.hosts.service import hosts_query
from portal.monitoring.models import OPEN, Event
from tests.portal.conftest import _make_postgres_app
from tests.support.fleet import seed_fleet

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_app(tmp_path: Path, postgres_migrated: str) -> Iterator[Flask]:
    application = _make_postgres_app(tmp_path, postgres_migrated)
    with application.app_context():
        seed_fleet(30, operations_per_host=3)
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        yield application
        db.session.remove()
        db.engine.dispose()


def plan(statement: Any) -> list[dict[str, Any]]:
    """Every node of the plan Postgres makes for `statement` with index paths preferred."""
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    db.session.execute(text("SET LOCAL enable_bitmapscan = off"))
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    document = db.session.execute(text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one()
    db.session.rollback()
    nodes, todo = (
        [],
        [(document if isinstance(document, list) else json.loads(document))[0]["Plan"]],
    )
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def first_operation() -> str:
    return db.session.scalar(select(Operation.id).order_by(Operation.id).limit(1))


def first_host() -> int:
    return db.session.scalar(select(HostStatusChange.host_id).limit(1))


HOT_QUERIES: dict[str, tuple[Callable[[], Any], str]] = {
    "an operation's log after a line (read and follow)": (
        lambda: (
            select(OperationLogLine)
            .where(OperationLogLine.operation_id == first_operation(), OperationLogLine.id > 2)
            .order_by(OperationLogLine.id)
            .limit(1000)
        ),
        "ix_operation_log_lines_operation_id_id",
    ),
    "failed operations, newest first": (
        lambda: list_operations(state="failed").limit(25),
        "ix_operations_state_created_at",
    ),
    "operations, newest first": (lambda: list_operations().limit(25), "ix_operations_created_at"),
    "applications by name (a page)": (
        lambda: apps_query().limit(50),
        "ix_applications_name_host_id",
    ),
    "hosts by name (a page)": (lambda: hosts_query().limit(50), "uq_hosts_name"),
    "a host's latest status changes": (
        lambda: (
            select(HostStatusChange)
            .where(HostStatusChange.host_id == first_host())
            .order_by(HostStatusChange.at.desc())
            .limit(50)
        ),
        "ix_host_status_changes_host_id_at",
    ),
    "restarting containers (event detection)": (
        lambda: select(HostContainer).where(HostContainer.state == "restarting"),
        "ix_host_containers_state",
    ),
    "containers of some hosts (a sweep's changed hosts)": (
        lambda: select(HostContainer).where(HostContainer.host_id.in_([1, 2, 3])),
        "host_containers",  # the host_id index or the (host_id, container_id) unique one
    ),
    "open events (event detection)": (
        lambda: select(Event.key, Event.id).where(Event.state == OPEN),
        "ix_monitoring_events_state",
    ),
    "finished operations older than the retention": (
        lambda: select(Operation.id).where(Operation.finished_at < text("now()")).limit(1000),
        "ix_operations_finished_at",
    ),
}


@pytest.mark.parametrize("name", list(HOT_QUERIES))
def test_hot_query_uses_its_index_and_no_sort(postgres_app: Flask, name: str) -> None:
    build, index = HOT_QUERIES[name]
    nodes = plan(build())

    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    assert not [n for n in scans if n["Node Type"] == "Seq Scan"], scans
    assert any(index in n.get("Index Name", "") for n in scans), [
        n.get("Index Name") for n in scans
    ]
    # Incremental Sort only orders ties of the indexed column by id; a full Sort means the
    # index does not give the order the page needs.
    assert not [n for n in nodes if n["Node Type"] == "Sort"], [n["Node Type"] for n in nodes]
