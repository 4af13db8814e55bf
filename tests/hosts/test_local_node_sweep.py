"""The health sweep on the Spectr node, against this machine's real Docker engine: the node's
facts and containers, its applications' status from each sweep, and a real crash loop that
opens container.restarting and closes it only once the container runs steadily again."""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal.apps.models import CONTAINER, Application
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.health import check_all_hosts
from portal.hosts.models import Host, HostContainer
from portal.hosts.service import ensure_local_host
from portal.monitoring.events import detect_events
from portal.monitoring.models import Event
from tests.hosts.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.docker]
# Crashes at once until /ok exists in its file system, then runs for good.
CRASH_UNTIL_FIXED = "[ -f /ok ] && exec sleep 3600; echo crashing; exit 1"


def application(host: Host, name: str, status: str = "running") -> Application:
    """An application whose status was last read a minute ago."""
    app = Application(name=name, host_id=host.id, kind=CONTAINER, status=status,
                      status_checked_at=utcnow() - timedelta(minutes=1))  # fmt: skip
    db.session.add(app)
    db.session.commit()
    return app


def sweep_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Sweep (as the periodic job does) until check() is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        check_all_hosts(timeout_s=5)
        db.session.expire_all()
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s (last: {result!r})")
        time.sleep(0.5)


def test_the_sweep_reads_the_nodes_facts_containers_and_ports(
    app: Flask, run_container: Callable[..., Any]
) -> None:
    node = ensure_local_host()
    port = free_port()
    web = run_container("sleep 3600", ports={"80/tcp": ("127.0.0.1", port)})
    gone = application(node, f"spectr-test-never-{uuid.uuid4().hex[:6]}")
    waiting = application(node, f"spectr-test-pending-{uuid.uuid4().hex[:6]}", status="pending")
    before = utcnow()

    report = check_all_hosts(timeout_s=5)

    assert report.hosts == 1 and report.answered == 1  # the node, though no agent runs on it
    db.session.expire_all()
    facts = node.facts
    assert facts["os"]["pretty_name"] and facts["kernel"]["release"]
    assert facts["cpu"]["logical"] >= 1 and facts["memory"]["total_mb"] > 0
    assert facts["docker"]["engine_version"] and node.last_seen_at >= before
    row = db.session.scalar(select(HostContainer).filter_by(host_id=node.id, name=web.name))
    assert row is not None and row.state == "running"
    assert row.ports == [{"container_port": 80, "protocol": "tcp", "host_port": port,
                          "host_ip": "127.0.0.1"}]  # fmt: skip
    assert row.started_at is not None and abs(row.started_at - utcnow()) < timedelta(seconds=30)
    # Its container is nowhere on the node: the application is absent, not "running" forever.
    assert (gone.status, gone.status_detail) == ("absent", "no container found")
    assert waiting.status == "pending"  # not deployed yet: nothing to miss
    assert node.status == "ready"


def test_a_crash_loop_shows_on_its_application_and_opens_an_event_until_it_runs_steadily(
    app: Flask, run_container: Callable[..., Any]
) -> None:
    app.config["SPECTR_MONITORING_STEADY_SECONDS"] = 6
    node = ensure_local_host()
    looping = run_container(CRASH_UNTIL_FIXED, restart_policy={"Name": "always"})
    crashing = application(node, looping.name)

    sweep_until(lambda: crashing.status == "restarting", 60, "restarting status")
    assert node.status == "degraded"
    assert node.status_reason == f"Unhealthy container(s): {looping.name}"
    opened, _ = detect_events()
    assert [(e.kind, e.subject) for e in opened] == [
        ("container.restarting", f"spectr-node/{looping.name}")
    ]

    # The operator fixes it and restarts it: it runs, but is not steady yet.
    looping.put_archive("/", _tar_with("ok"))
    restarted_at = time.monotonic()
    looping.restart(timeout=0)
    sweep_until(lambda: crashing.status == "running", 30, "running status")
    assert detect_events() == ([], [])  # still open: it has run only a moment
    event = db.session.get_one(Event, opened[0].id)
    assert event.state == "open"

    def resolved() -> bool:
        return bool(detect_events()[1])

    sweep_until(resolved, 30, "resolved event")
    assert time.monotonic() - restarted_at >= 6  # steady for the time set, then resolved
    db.session.expire_all()
    assert db.session.get_one(Event, opened[0].id).state == "resolved"
    sweep_until(lambda: node.status == "ready", 15, "the node ready again")


def _tar_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = 0
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()
