"""The health sweep of hosts that configuration puts on an installed engine (SPECTR_HOST_ENGINES):
the sweep asks that engine, through the ContainerEngine contract, how the host is, and records
the answer as an agent's (status, last seen, containers, status changes); an agent URL such a
host may have is not probed."""

from __future__ import annotations

import subprocess
from types import ModuleType
from typing import Any, NoReturn

import pytest
from flask import Flask
from sqlalchemy import select

from agent.tests.harness import base_image, unique_name
from portal.engines import Unavailable
from portal.extensions import db
from portal.hosts.health import check_all_hosts
from portal.hosts.models import Host, HostContainer, HostStatusChange
from portal.hosts.service import engine_name_for
from tests.hosts.test_health import bootstrapped_host


def _host(name: str, **fields: Any) -> Host:
    host = Host(name=name, address="10.9.0.1", ssh_password="pw", labels={}, facts={}, **fields)
    db.session.add(host)
    db.session.commit()
    return host


def _down(*args: Any, **kwargs: Any) -> NoReturn:
    raise Unavailable("the recording engine's host is down")


def _fresh(host_id: int) -> Host:
    db.session.expire_all()
    return db.session.get_one(Host, host_id)


@pytest.mark.slow
@pytest.mark.docker
def test_a_plugin_engine_host_is_swept_through_its_engine(
    app: Flask, installed: ModuleType
) -> None:
    plain = _host("plug-sweep", status="new").id  # no agent at all
    # An agent URL where nothing listens: were it probed, the host would miss its checks.
    agented = bootstrapped_host("plug-agented", status="unreachable").id
    on_agent = bootstrapped_host("still-agent").id  # left on the agent: probed as before
    app.config["SPECTR_HOST_ENGINES"] = "plug-sweep=recording,plug-agented=recording"
    assert engine_name_for(_fresh(agented)) == "recording"
    name = unique_name("plugin-sweep")
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "spectr.test=plugin-sweep",
         base_image(), "sleep", "300"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        check_all_hosts(timeout_s=5)
        for host_id in (plain, agented):
            host = _fresh(host_id)
            assert host.status == "ready", host.status_reason
            assert host.status_reason == "Engine 'recording' answers."
            assert host.last_seen_at is not None and host.missed_checks == 0
            assert host.facts.get("hostname")  # the engine's facts, stored by the sweep
            synced = db.session.scalars(
                select(HostContainer.name).where(HostContainer.host_id == host_id)
            ).all()
            assert name in synced
        assert {("plug-sweep", "health"), ("plug-sweep", "list_containers"),
                ("plug-agented", "list_containers")} <= set(installed.CALLS)  # fmt: skip
        moved = db.session.scalars(
            select(HostStatusChange).where(HostStatusChange.host_id == plain)
        ).all()
        assert [(m.from_status, m.to_status) for m in moved] == [("new", "ready")]
        assert _fresh(on_agent).missed_checks == 1  # the agent's probe, unchanged

        installed.RecordingEngine.list_containers = _down  # the class inherits it: deleted below
        check_all_hosts(timeout_s=5)
        host = _fresh(plain)
        assert (host.status, host.missed_checks) == ("ready", 1)  # one miss is not enough
        check_all_hosts(timeout_s=5)
        host = _fresh(plain)
        assert host.status == "unreachable"
        assert host.status_reason == (
            "Engine 'recording' did not answer 2 checks in a row: "
            "the recording engine's host is down"
        )

        del installed.RecordingEngine.list_containers
        check_all_hosts(timeout_s=5)
        assert _fresh(plain).status == "ready"
        moved = db.session.scalars(
            select(HostStatusChange.to_status)
            .where(HostStatusChange.host_id == plain)
            .order_by(HostStatusChange.id)
        ).all()
        assert moved == ["ready", "unreachable", "ready"]
    finally:
        if "list_containers" in vars(installed.RecordingEngine):
            del installed.RecordingEngine.list_containers
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_an_engine_that_cannot_be_made_is_a_missed_check(app: Flask, installed: ModuleType) -> None:
    host_id = _host("plug-missing", status="ready").id
    app.config["SPECTR_HOST_ENGINES"] = "*=nope"
    for _ in range(2):
        check_all_hosts(timeout_s=5)
    host = _fresh(host_id)
    assert host.status == "unreachable"
    assert host.status_reason.startswith(
        "Engine 'nope' did not answer 2 checks in a row: No engine named 'nope'"
    )
