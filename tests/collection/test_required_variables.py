"""Every playbook refuses a missing required variable before it touches the host (issue 14).

One DinD test host for the module, carrying an unlabelled container, another application's
container and an agent config. Each case is one ansible-playbook run that must fail at
validation, name the variable, and leave the host exactly as it was: the same containers in the
same state, the same agent config, no file under /etc, /opt, /usr or /var/lib newer than the
run's start. Removal then acts only on the containers labelled for the application named.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collection.ansible_runs import AnsibleEnvironment
from tests.support.testhosts import TestHost, cleanup_key_pair, host_image, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]

SPECTR_LABELS = ("--label", "spectr.managed-by=spectr.core")
AGENT_CONFIG = '{"token_sha256": "the-running-agent-s-hash"}'
# Everything a run could change outside the engine's own storage.
CHANGED_FILES = (
    "find /etc /opt /usr /srv /var/lib -path /var/lib/docker -prune -o -path /var/lib/containerd"
    " -prune -o -newer /tmp/before-run -print"
)


@pytest.fixture(scope="module")
def host() -> Iterator[TestHost]:
    """A host with its own engine: an unlabelled container, two apps' containers, an agent."""
    host = start_test_host("required", dind=True)
    image = host_image(dind=False)
    host.load_image(image)
    run = ["docker", "run", "-d", "--restart=unless-stopped"]
    host.ssh(*run, "--name", "plain-web", image, "sleep", "infinity")
    for app in ("spectr-other", "spectr-mine"):
        host.ssh(*run, "--name", app, "--label", f"spectr.app={app}", *SPECTR_LABELS, image,
                 "sleep", "infinity")  # fmt: skip
    host.ssh("mkdir", "-p", "/etc/spectr-agent")
    host.exec("sh", "-c", "cat > /etc/spectr-agent/agent.json", stdin=AGENT_CONFIG.encode())
    yield host
    host.remove()
    cleanup_key_pair(host.key_pair)


@pytest.fixture(scope="module")
def inventory(ansible_env: AnsibleEnvironment, host: TestHost) -> Path:
    return ansible_env.write_inventory({"testhost": host.inventory_vars(user="ops")}, "required")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("agent") / "spectr-agent.pyz"
    path.write_text("stand-in: every run fails before copying it")
    return str(path)


def containers(host: TestHost) -> dict[str, tuple[str, str, list[str]]]:
    """Return each container's name with its id, state and labels (docker joins them unsorted)."""
    listing = host.ssh("docker", "ps", "-a", "--no-trunc", "--format",
                       "'{{.Names}} {{.ID}} {{.State}} {{.Labels}}'")  # fmt: skip
    found = {}
    for line in listing.splitlines():
        name, container_id, state, labels = [*line.split(" ", 3), ""][:4]
        found[name] = (container_id, state, sorted(labels.split(",")))
    return found


def host_state(host: TestHost) -> tuple[dict[str, Any], str]:
    return containers(host), host.ssh("cat", "/etc/spectr-agent/agent.json")


def app_vars() -> dict[str, Any]:
    return {"app_image": host_image(dind=False), "app_pull": "never",
            "app_command": ["sleep", "infinity"]}  # fmt: skip


def agent_vars(artifact: str) -> dict[str, Any]:
    return {"agent_artifact": artifact, "agent_tls_cert": "CERT", "agent_tls_key": "KEY",
            "agent_client_ca": "CA"}  # fmt: skip


# case: (playbook, variables without the one under test, the variable, its value or None)
CASES: dict[str, tuple[str, str, str, Any]] = {
    "remove_app-without-app_name": ("remove_app", "none", "app_name", None),
    "remove_app-empty-app_name": ("remove_app", "none", "app_name", ""),
    "deploy_app-without-app_name": ("deploy_app", "app", "app_name", None),
    "bootstrap-without-agent_token": ("bootstrap", "agent", "agent_token", None),
    "bootstrap-empty-agent_token": ("bootstrap", "agent", "agent_token", ""),
    "agent-empty-agent_token": ("agent", "agent", "agent_token", ""),
    "registry-without-registry_users": ("registry", "registry", "registry_users", None),
    "monitoring-no-token": ("monitoring", "monitoring", "monitoring_scrape_token", None),
}


@pytest.mark.parametrize("case", CASES)
def test_a_missing_required_variable_fails_before_touching_the_host(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost, artifact: str, case: str
) -> None:
    playbook, base, name, value = CASES[case]
    variables = {
        "none": {},
        "app": app_vars(),
        "agent": agent_vars(artifact),
        "registry": {"registry_tls_cert": "CERT", "registry_tls_key": "KEY"},
        "monitoring": {"monitoring_ca_cert": "CA"},
    }[base]
    if value is not None:
        variables[name] = value
    before = host_state(host)
    host.ssh("touch", "/tmp/before-run")

    run = ansible_env.run_playbook(
        f"spectr.core.{playbook}", inventory, variables, expect_failure=True
    )

    assert run.returncode != 0
    message = run.failure_text()
    assert name in message, message
    assert ("missing required arguments" if value is None else "must not be empty") in message
    assert run.changed_count() == 0
    assert host_state(host) == before
    assert host.ssh(CHANGED_FILES).split() == []


def test_removal_leaves_an_unlabelled_container_with_that_name(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    before = containers(host)

    run = ansible_env.run_playbook("spectr.core.remove_app", inventory, {"app_name": "plain-web"})

    assert run.changed_count() == 0
    assert containers(host) == before


def test_removal_never_takes_a_name_as_the_prefix_of_a_container_id(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    before = containers(host)
    prefix = before["spectr-other"][0][:12]

    run = ansible_env.run_playbook("spectr.core.remove_app", inventory, {"app_name": prefix})

    assert run.changed_count() == 0
    assert containers(host) == before


def test_removal_takes_only_the_labelled_containers_of_that_app(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    before = containers(host)

    run = ansible_env.run_playbook("spectr.core.remove_app", inventory, {"app_name": "spectr-mine"})

    assert run.task("Remove the application's container")["changed"] is True
    after = containers(host)
    assert "spectr-mine" not in after
    assert after == {name: line for name, line in before.items() if name != "spectr-mine"}


def test_deploy_refuses_to_replace_a_container_that_is_not_the_apps(
    ansible_env: AnsibleEnvironment, inventory: Path, host: TestHost
) -> None:
    before = containers(host)

    run = ansible_env.run_playbook(
        "spectr.core.deploy_app", inventory, {**app_vars(), "app_name": "plain-web"},
        expect_failure=True,
    )  # fmt: skip

    assert "does not carry the labels spectr.app=plain-web" in run.failure_text()
    assert run.changed_count() == 0
    assert containers(host) == before
