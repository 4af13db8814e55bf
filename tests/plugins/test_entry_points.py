"""Engines and provisioners found by entry point and chosen by configuration alone: a package
apart from Spectr (tests/plugins/packages) is installed as a dist-info on sys.path, named in
SPECTR_HOST_ENGINES / SPECTR_PROVISIONER, and the portal uses it, with no change in portal/."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

from portal.engines.contract_suite import ContainerEngineContract
from portal.extensions import db
from portal.hosts.models import Host


def _plain_host(name: str) -> Host:
    host = Host(name=name, address="10.9.0.1", ssh_password="pw", status="ready", labels={},
                facts={})  # fmt: skip
    db.session.add(host)
    db.session.commit()
    return host


@pytest.mark.slow
@pytest.mark.docker
def test_a_host_uses_the_engine_its_configuration_names(
    app: Flask, api_as: Any, installed: ModuleType
) -> None:
    host = _plain_host("plug-1")  # no agent: only the configured engine can reach it
    name = f"spectr-test-plugin-{host.id}-{id(host) % 10000}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "spectr.test=plugin",
         _base_image(), "sleep", "300"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        viewer = api_as("viewer")
        without = viewer.get(f"/api/v1/hosts/{host.id}/containers")
        assert without.status_code == 404 and "no agent yet" in without.get_json()["message"]

        app.config["SPECTR_HOST_ENGINES"] = "plug-1=recording"
        listed = viewer.get(f"/api/v1/hosts/{host.id}/containers?q={name}")
        assert listed.status_code == 200, listed.get_json()
        assert [row["name"] for row in listed.get_json()] == [name]
        assert ("plug-1", "list_containers") in installed.CALLS
        shown = viewer.get(f"/api/v1/hosts/{host.id}/containers/{name}")
        assert shown.status_code == 200 and ("plug-1", "inspect_container") in installed.CALLS

        app.config["SPECTR_HOST_ENGINES"] = "plug-1=nope"
        missing = viewer.get(f"/api/v1/hosts/{host.id}/containers")
        assert missing.status_code == 503
        assert missing.get_json()["message"] == (
            "No engine named 'nope': built in or installed are agent, docker, recording "
            "(entry point group spectr.engines)."
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_the_provisioner_is_chosen_by_configuration(
    app: Flask, installed: ModuleType, tmp_path: Path
) -> None:
    from portal.automation import InventoryHost
    from portal.automation.provisioner import run_playbook

    playbook = tmp_path / "noop.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
    app.config["SPECTR_PROVISIONER"] = "recording"
    result = run_playbook(str(playbook), [InventoryHost("ghost", "127.0.0.1", port=1)])
    assert [("provisioner", str(playbook))] == installed.CALLS
    assert result.hosts == {} or "ghost" in result.hosts  # a real ansible-runner run


class TestTheRecordingEngineKeepsTheContract(ContainerEngineContract):
    """The product's contract suite, run on the engine as the entry point yields it."""

    pytestmark = [pytest.mark.slow, pytest.mark.docker]

    @pytest.fixture
    def engine(self, installed: ModuleType) -> Iterator[Any]:
        from portal.core import plugins

        factory = plugins.load("engine", "recording", {})
        engine = factory(Host(name="contract"))
        yield engine
        engine.close()

    @pytest.fixture
    def image(self) -> str:
        return _base_image()


def _base_image() -> str:
    from agent.tests.harness import base_image

    return base_image()
