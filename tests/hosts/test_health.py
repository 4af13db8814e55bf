"""Health checks: status transitions from sweep results, and sweeps over a real TLS agent."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal.apps.models import COMPOSE, CONTAINER, Application
from portal.core.pki import issue_server_certificate
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo
from portal.extensions import db
from portal.hosts.health import Probe, check_all_hosts, record_probes
from portal.hosts.models import Host, HostContainer


def bootstrapped_host(name: str = "node-1", **fields: Any) -> Host:
    host = Host(
        name=name,
        address="127.0.0.1",
        ssh_password="pw",
        auth_method="password",
        status=fields.pop("status", "ready"),
        bootstrapped_at=utcnow(),
        agent_url=fields.pop("agent_url", "https://127.0.0.1:1"),
        agent_token=fields.pop("agent_token", "token"),
        labels={},
        facts={},
        **fields,
    )
    db.session.add(host)
    db.session.commit()
    return host


def container(
    name: str, state: str = "running", status: str = "Up 1 minute", project: str | None = None
) -> ContainerInfo:
    labels = {"com.docker.compose.project": project} if project else {}
    return ContainerInfo(
        id=f"id-{name}", name=name, image="img:1", state=state, labels=labels, status=status
    )


def application(host: Host, name: str, kind: str = CONTAINER) -> Application:
    app = Application(name=name, host_id=host.id, kind=kind, status="running")
    db.session.add(app)
    db.session.commit()
    return app


def statuses(host: Host) -> list[str]:
    db.session.refresh(host)
    return [change.to_status for change in reversed(host.status_changes)]


def test_unreachable_after_two_missed_checks_and_ready_again_by_itself(any_db_app: Flask) -> None:
    host = bootstrapped_host()
    down = Probe(host.id, answered=False, error="connection refused")
    up = Probe(host.id, answered=True, engine_ok=True, agent_version="0.1.0")

    record_probes([down])
    assert host.status == "ready" and host.missed_checks == 1  # one miss is not enough
    record_probes([down])
    assert host.status == "unreachable"
    assert "did not answer 2 checks in a row: connection refused" in host.status_reason
    record_probes([down])
    record_probes([up])

    assert host.status == "ready" and host.missed_checks == 0 and host.last_seen_at
    assert statuses(host) == ["unreachable", "ready"]  # one record per change, not per sweep


def test_degraded_when_the_engine_or_a_container_is_unhealthy(any_db_app: Flask) -> None:
    host = bootstrapped_host()
    application(host, "web")

    record_probes([Probe(host.id, True, engine_ok=False, agent_version="0.1", error="socket gone")])
    assert host.status == "degraded" and "Docker engine does not" in host.status_reason
    sick = container("web", status="Up 2 minutes (unhealthy)")
    record_probes([Probe(host.id, True, True, "0.1", containers=[sick])])
    assert host.status == "degraded" and host.status_reason == "Unhealthy container(s): web"
    record_probes([Probe(host.id, True, True, "0.1", containers=[container("web")])])

    assert statuses(host) == ["degraded", "ready"]


def test_a_crash_loop_caught_running_keeps_its_host_degraded(any_db_app: Flask) -> None:
    any_db_app.config["SPECTR_MONITORING_STEADY_SECONDS"] = 60
    host = bootstrapped_host()
    application(host, "web")
    looping = container("web", "restarting", "Restarting (1) 1 second ago")

    record_probes([Probe(host.id, True, True, "0.1", containers=[looping])])
    record_probes([Probe(host.id, True, True, "0.1", containers=[container("web", status="Up 2 seconds")])])  # fmt: skip
    assert host.status == "degraded"  # up for 2 s between two crashes: not well yet
    stopped = container("web", "exited", "Exited (137) 1 second ago")  # a restart by hand
    record_probes([Probe(host.id, True, True, "0.1", containers=[stopped])])
    assert host.status == "degraded"
    record_probes([Probe(host.id, True, True, "0.1", containers=[container("web", status="Up 2 minutes")])])  # fmt: skip

    assert statuses(host) == ["degraded", "ready"]
    fresh = container("new", status="Up 1 second")
    application(host, "new")
    record_probes([Probe(host.id, True, True, "0.1", containers=[fresh])])
    assert host.status == "ready"  # a fresh start alone is no problem


def test_only_spectr_applications_degrade_a_host(any_db_app: Flask) -> None:
    host = bootstrapped_host()
    application(host, "stack", kind=COMPOSE)
    by_hand = container("crashy", "restarting", "Restarting (1) 2 seconds ago")
    other_project = container("x-web-1", status="Up 1 minute (unhealthy)", project="someone-else")

    record_probes([Probe(host.id, True, True, "0.1", containers=[by_hand, other_project])])
    assert host.status == "ready"  # recorded, but nobody asked Spectr to run them
    rows = {c.name: c.state for c in db.session.scalars(select(HostContainer))}
    assert rows == {"crashy": "restarting", "x-web-1": "running"}

    ours = container("stack-db-1", status="Up 1 minute (unhealthy)", project="stack")
    record_probes([Probe(host.id, True, True, "0.1", containers=[by_hand, ours])])
    assert host.status == "degraded" and host.status_reason == "Unhealthy container(s): stack-db-1"


def test_container_states_are_synced(any_db_app: Flask) -> None:
    host = bootstrapped_host()
    application(host, "a")
    first = [container("a"), container("b", "exited", "Exited (137) 5 seconds ago")]
    record_probes([Probe(host.id, True, True, "0.1", containers=first)])
    rows = {c.name: c for c in db.session.scalars(select(HostContainer))}
    assert rows["b"].state == "exited" and rows["b"].exit_code == 137
    assert rows["a"].state == "running" and rows["a"].health is None

    later = [container("a", "restarting", "Restarting (1) 2 seconds ago"), container("c")]
    record_probes([Probe(host.id, True, True, "0.1", containers=later)])

    rows = {c.name: c for c in db.session.scalars(select(HostContainer))}
    assert sorted(rows) == ["a", "c"]  # b is gone from the host, so from the database
    assert rows["a"].state == "restarting"
    assert host.status == "degraded"


def test_hosts_being_bootstrapped_or_never_bootstrapped_are_left_alone(any_db_app: Flask) -> None:
    busy = bootstrapped_host("busy", status="bootstrapping")
    fresh = Host(
        name="fresh", address="10.0.0.1", ssh_password="pw", status="new", labels={}, facts={}
    )
    db.session.add(fresh)
    db.session.commit()

    record_probes([Probe(busy.id, answered=False), Probe(busy.id, answered=False)])
    record_probes([Probe(busy.id, answered=False)])
    report = check_all_hosts(timeout_s=1)

    assert busy.status == "bootstrapping" and fresh.status == "new"
    assert report.hosts == 1  # neither is a target of the sweep; the Spectr node always is
    assert db.session.scalar(select(Host).where(Host.is_local.is_(True))).last_seen_at


@pytest.mark.slow
@pytest.mark.docker
def test_sweep_over_a_real_agent_that_stops_and_starts(app: Flask, tmp_path: Path) -> None:
    from agent.tests.harness import AgentProcess, base_image, unique_name

    cert_pem, key_pem = issue_server_certificate("agent", ["127.0.0.1"])
    (tmp_path / "tls.crt").write_text(cert_pem)
    (tmp_path / "tls.key").write_text(key_pem)
    agent = AgentProcess(tmp_path, (str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))).start()
    name = unique_name("hosts-health")
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "spectr.test=health", base_image(),
         "sleep", "600"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        host = bootstrapped_host(agent_url=agent.url, agent_token=agent.token)
        report = check_all_hosts(timeout_s=3)
        assert (report.hosts, report.answered) == (2, 2)  # the agent's host and the Spectr node
        assert host.status == "ready" and host.agent_version
        mine = select(HostContainer).filter_by(name=name, host_id=host.id)
        synced = db.session.scalar(mine)
        assert synced is not None and synced.state == "running"

        subprocess.run(["docker", "stop", "-t", "0", name], check=True, capture_output=True)
        agent.stop()
        check_all_hosts(timeout_s=2)
        check_all_hosts(timeout_s=2)
        assert host.status == "unreachable"
        assert db.session.scalar(mine).state == "running"

        agent.start()
        check_all_hosts(timeout_s=3)
        assert host.status == "ready"
        assert db.session.scalar(mine).state == "exited"
        assert statuses(host) == ["unreachable", "ready"]
    finally:
        agent.stop()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
