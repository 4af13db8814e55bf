"""host_facts and proxy_route on a real test host over SSH, each task run twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collection.ansible_runs import AnsibleEnvironment
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]

DATA = Path(__file__).parent / "data"
CONFIG = "/etc/spectr-proxy/config.json"


@pytest.fixture(scope="module")
def host() -> Iterator[TestHost]:
    """A host with a running Docker engine, so host_facts has an engine to report."""
    test_host = start_test_host("modules", dind=True)
    yield test_host
    test_host.remove()
    cleanup_key_pair(test_host.key_pair)


@pytest.fixture(scope="module")
def inventory(ansible_env: AnsibleEnvironment, host: TestHost) -> Path:
    return ansible_env.write_inventory({"testhost": host.inventory_vars(user="ops")}, "modules")


def play(tasks: list[dict[str, Any]], become: bool = True) -> list[dict[str, Any]]:
    return [{"name": "Modules", "hosts": "testhost", "gather_facts": False, "become": become,
             "tasks": tasks}]  # fmt: skip


def test_host_facts_reports_os_docker_and_no_gpu(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    tasks = [
        {"name": "Gather", "spectr.core.host_facts": {}},
        {"name": "Gather again", "spectr.core.host_facts": {}},
        {"name": "Show the fact", "ansible.builtin.debug": {"var": "spectr_host.os.id"}},
    ]

    run = ansible_env.run_playbook(play(tasks), inventory)

    first = run.task("Gather")
    facts = first["ansible_facts"]["spectr_host"]
    assert (first["changed"], run.task("Gather again")["changed"]) == (False, False)
    assert facts["os"]["id"] == "debian" and facts["os"]["version_id"] == "12"
    assert facts["hostname"] == host.ssh("hostname").strip()
    assert (
        facts["docker"]["engine_version"]
        == host.ssh("docker", "version", "--format", "'{{.Server.Version}}'").strip()
    )
    assert facts["cpu"]["logical"] >= 1 and facts["memory"]["total_mb"] > 0
    assert facts["disks"] and all(disk["size_mb"] > 0 for disk in facts["disks"])
    assert facts["gpus"] == []
    assert run.task("Show the fact")["spectr_host.os.id"] == "debian"


def test_host_facts_reads_gpus_from_nvidia_smi(
    ansible_env: AnsibleEnvironment, inventory: Path
) -> None:
    # No GPU here: a script standing in for nvidia-smi prints the recorded H100 output, so the
    # module's real path (find the command, run it, parse both outputs) runs on the host.
    stand_in = (
        "#!/bin/sh\n"
        'case "$1" in --query-gpu=*) cat /opt/fake-gpu/query.csv ;; *) cat /opt/fake-gpu/banner.txt ;; esac\n'
    )
    tasks = [
        {"name": "Make the stand-in folder", "ansible.builtin.file": {"path": "/opt/fake-gpu", "state": "directory", "mode": "0755"}},
        {"name": "Copy the query output", "ansible.builtin.copy": {"src": str(DATA / "nvidia-smi-h100-query.csv"), "dest": "/opt/fake-gpu/query.csv", "mode": "0644"}},
        {"name": "Copy the banner", "ansible.builtin.copy": {"src": str(DATA / "nvidia-smi-h100-banner.txt"), "dest": "/opt/fake-gpu/banner.txt", "mode": "0644"}},
        {"name": "Install the stand-in", "ansible.builtin.copy": {"content": stand_in, "dest": "/opt/fake-gpu/nvidia-smi", "mode": "0755"}},
        {"name": "Gather", "spectr.core.host_facts": {"nvidia_smi_path": "/opt/fake-gpu/nvidia-smi"}},
    ]  # fmt: skip

    run = ansible_env.run_playbook(play(tasks), inventory)

    gpus = run.task("Gather")["host"]["gpus"]
    assert len(gpus) == 4
    assert gpus[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert gpus[1]["memory_used_mb"] == 74215
    assert {gpu["cuda_version"] for gpu in gpus} == {"12.4"}
    assert {gpu["driver_version"] for gpu in gpus} == {"550.54.15"}


def route(**overrides: Any) -> dict[str, Any]:
    base = {
        "path": CONFIG,
        "name": "chat",
        "hosts": ["chat.example.com"],
        "path_prefix": "/v1/",
        "upstreams": [{"url": "http://10.0.0.5:8000"}],
        "timeout_s": 120,
    }
    return {**base, **overrides}


def test_proxy_route_twice_then_change_then_remove_twice(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    tasks = [
        {"name": "Make the folder", "ansible.builtin.file": {"path": "/etc/spectr-proxy", "state": "directory", "mode": "0755"}},
        {"name": "Add", "spectr.core.proxy_route": route()},
        {"name": "Add again", "spectr.core.proxy_route": route()},
        {"name": "Add a second route", "spectr.core.proxy_route": route(name="embed", path_prefix="/embed/")},
        {"name": "Change an upstream", "spectr.core.proxy_route": route(upstreams=[{"url": "http://10.0.0.6:8000"}])},
        {"name": "Remove", "spectr.core.proxy_route": {"path": CONFIG, "name": "chat", "state": "absent"}},
        {"name": "Remove again", "spectr.core.proxy_route": {"path": CONFIG, "name": "chat", "state": "absent"}},
    ]  # fmt: skip

    run = ansible_env.run_playbook(play(tasks), inventory, diff=True)

    changed = [run.task(name)["changed"] for name in
               ("Add", "Add again", "Add a second route", "Change an upstream", "Remove", "Remove again")]  # fmt: skip
    assert changed == [True, False, True, True, True, False]
    assert '"url": "http://10.0.0.6:8000"' in run.task("Change an upstream")["diff"]["after"]
    document = json.loads(host.ssh("cat", CONFIG))
    assert [r["name"] for r in document["routes"]] == ["embed"]
    assert [p["name"] for p in document["pools"]] == ["embed"]
    assert document["version"] == 4


def test_proxy_route_check_mode_leaves_the_file_alone(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    before = host.ssh("cat", CONFIG)
    tasks = [{"name": "Add in check mode", "spectr.core.proxy_route": route(name="dry")}]

    run = ansible_env.run_playbook(play(tasks), inventory, check=True)

    assert run.task("Add in check mode")["changed"] is True
    assert host.ssh("cat", CONFIG) == before


def test_proxy_route_without_root_fails_with_the_os_error(
    ansible_env: AnsibleEnvironment, inventory: Path
) -> None:
    tasks = [{"name": "Add as ops", "spectr.core.proxy_route": route(name="nope")}]

    run = ansible_env.run_playbook(play(tasks, become=False), inventory, expect_failure=True)

    result = run.task("Add as ops")
    assert result["failed"] is True
    assert "Permission denied" in result["msg"]
