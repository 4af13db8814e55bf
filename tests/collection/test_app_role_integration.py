"""The app role (playbooks deploy_app / remove_app) on a DinD test host, each step twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collection.ansible_runs import AnsibleEnvironment
from tests.support.testhosts import TestHost, cleanup_key_pair, host_image, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def app_host() -> Iterator[TestHost]:
    """A host with its own engine, holding the base image (no registry to pull from)."""
    host = start_test_host("app", dind=True)
    host.load_image(host_image(dind=False))
    yield host
    host.remove()
    cleanup_key_pair(host.key_pair)


@pytest.fixture(scope="module")
def inventory(ansible_env: AnsibleEnvironment, app_host: TestHost) -> Path:
    return ansible_env.write_inventory({"testhost": app_host.inventory_vars(user="ops")}, "app")


def app_vars(revision: str) -> dict[str, Any]:
    return {
        "app_name": "spectr-test-echo",
        "app_revision": revision,
        "app_image": host_image(dind=False),
        "app_pull": "never",
        "app_command": ["sleep", "infinity"],
        "app_env": {"MODEL": "tiny", "REPLICA": 1},
        "app_labels": {"team": "ml"},
        "app_cpus": 0.5,
        "app_memory": "128m",
        "app_healthcheck": {"test": ["CMD", "true"], "interval": "1s", "retries": 3},
    }


def inspect(host: TestHost, name: str) -> dict[str, Any]:
    return json.loads(host.ssh("docker", "inspect", name))[0]


def test_deploy_twice_update_then_remove_twice(
    ansible_env: AnsibleEnvironment, inventory: Path, app_host: TestHost
) -> None:
    deploy, remove = "spectr.core.deploy_app", "spectr.core.remove_app"

    first = ansible_env.run_playbook(deploy, inventory, app_vars("1"))
    second = ansible_env.run_playbook(deploy, inventory, app_vars("1"))

    assert first.task("Run the application's container")["changed"] is True
    assert second.changed_count() == 0
    container = inspect(app_host, "spectr-test-echo")
    labels = container["Config"]["Labels"]
    assert labels["spectr.app"] == "spectr-test-echo" and labels["spectr.revision"] == "1"
    assert labels["team"] == "ml"
    assert "REPLICA=1" in container["Config"]["Env"]
    assert container["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert container["HostConfig"]["NanoCpus"] == 500_000_000
    assert container["State"]["Health"]["Status"] == "healthy"

    updated = ansible_env.run_playbook(deploy, inventory, app_vars("2"))

    assert updated.task("Run the application's container")["changed"] is True
    assert inspect(app_host, "spectr-test-echo")["Config"]["Labels"]["spectr.revision"] == "2"

    removed = ansible_env.run_playbook(remove, inventory, {"app_name": "spectr-test-echo"})
    removed_again = ansible_env.run_playbook(remove, inventory, {"app_name": "spectr-test-echo"})

    assert removed.task("Remove the application's container")["changed"] is True
    assert removed_again.changed_count() == 0
    names = app_host.ssh("docker", "ps", "-a", "--format", "'{{.Names}}'").split()
    assert "spectr-test-echo" not in names


def test_check_mode_deploy_changes_nothing_on_the_host(
    ansible_env: AnsibleEnvironment, inventory: Path, app_host: TestHost
) -> None:
    run = ansible_env.run_playbook(
        "spectr.core.deploy_app", inventory, {**app_vars("1"), "app_name": "spectr-test-dry"},
        check=True,
    )  # fmt: skip

    assert run.task("Run the application's container")["changed"] is True
    names = app_host.ssh("docker", "ps", "-a", "--format", "'{{.Names}}'").split()
    assert "spectr-test-dry" not in names


def test_wrong_variable_fails_before_any_change(
    ansible_env: AnsibleEnvironment, inventory: Path, app_host: TestHost
) -> None:
    bad = {**app_vars("1"), "app_name": "spectr-test-bad", "app_restart_policy": "sometimes"}

    run = ansible_env.run_playbook("spectr.core.deploy_app", inventory, bad, expect_failure=True)

    [(task_name, failure)] = run.failed_tasks()
    assert "Validating arguments against arg spec" in task_name
    assert "app_restart_policy" in failure["msg"]
    assert run.changed_count() == 0
    names = app_host.ssh("docker", "ps", "-a", "--format", "'{{.Names}}'").split()
    assert "spectr-test-bad" not in names
