"""`ansible-playbook spectr.core.bootstrap` against a fresh DinD test host, twice.

The host starts with Docker's packages present but no engine running, no service user, no
agent: the playbook must leave the engine answering, the agent healthy behind mutual TLS with
the ops' own CA, and facts returned; the second run must change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collection.ansible_runs import REPO_ROOT, AnsibleEnvironment, PlaybookRun
from tests.collection.galaxy import COLLECTION, tarball_name
from tests.collection.tls import TestCA
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]

AGENT_TOKEN = "agent-token-for-tests-0123456789"
BUILD_SCRIPT = REPO_ROOT / "ansible_collections/spectr/core/scripts/build_agent_zipapp.py"


@pytest.fixture(scope="module")
def fresh_host() -> Iterator[TestHost]:
    host = start_test_host("bootstrap", dind=True, start_docker=False)
    yield host
    host.remove()
    cleanup_key_pair(host.key_pair)


@pytest.fixture(scope="module")
def agent_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the agent zipapp the way the README tells ops to."""
    output = tmp_path_factory.mktemp("agent") / "spectr-agent.pyz"
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--source", str(REPO_ROOT), "--output", str(output)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return output


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def bootstrap_vars(agent_artifact: Path, ca: TestCA) -> dict[str, Any]:
    """What ops pass without the portal: their own CA, whose clients the agent requires."""
    cert = ca.issue()
    return {
        "agent_artifact": str(agent_artifact),
        "agent_tls_cert": cert.cert_pem,
        "agent_tls_key": cert.key_pem,
        "agent_token": AGENT_TOKEN,
        "agent_client_ca": ca.cert_pem,
    }


@pytest.fixture(scope="module")
def runs(
    ansible_env: AnsibleEnvironment, fresh_host: TestHost, bootstrap_vars: dict[str, Any]
) -> tuple[PlaybookRun, PlaybookRun]:
    inventory = ansible_env.write_inventory(
        {"testhost": fresh_host.inventory_vars(user="ops")}, "bootstrap"
    )
    first = ansible_env.run_playbook("spectr.core.bootstrap", inventory, bootstrap_vars)
    second = ansible_env.run_playbook("spectr.core.bootstrap", inventory, bootstrap_vars)
    return first, second


def test_bootstrap_leaves_docker_working(runs: Any, fresh_host: TestHost) -> None:
    fresh_host.load_image("spectr-test-base:latest")

    output = fresh_host.ssh("docker", "run", "--rm", "spectr-test-base:latest", "echo", "inside")

    assert output.strip() == "inside"
    daemon = json.loads(fresh_host.ssh("cat", "/etc/docker/daemon.json"))
    assert daemon["log-opts"] == {"max-size": "50m", "max-file": "5"}
    assert "insecure-registries" not in daemon


def test_bootstrap_returns_host_facts(runs: Any, fresh_host: TestHost) -> None:
    first, _ = runs

    facts = first.task("Gather Spectr's host facts")["ansible_facts"]["spectr_host"]

    engine = fresh_host.ssh("docker", "version", "--format", "'{{.Server.Version}}'").strip()
    assert facts["docker"]["engine_version"] == engine
    assert facts["os"]["id"] == "debian"


def test_bootstrap_starts_a_healthy_agent_as_the_service_user(
    runs: Any, fresh_host: TestHost, ca: TestCA
) -> None:
    client = ca.issue("ops-client")  # no extended key usage: good for client authentication
    fresh_host.exec("sh", "-c", "cat > /tmp/client.pem",
                    stdin=(client.cert_pem + client.key_pem).encode())  # fmt: skip
    curl = ["curl", "-sk", "-o", "/dev/null", "-w", "'%{http_code}'"]
    url = "https://127.0.0.1:7443/v1/health"
    health = fresh_host.ssh("curl", "-sk", "--cert", "/tmp/client.pem", "-H",
                            f"'Authorization: Bearer {AGENT_TOKEN}'", url)  # fmt: skip
    no_token = fresh_host.ssh(*curl, "--cert", "/tmp/client.pem", url)
    no_certificate = fresh_host.ssh(*curl, "-H", f"'Authorization: Bearer {AGENT_TOKEN}'",
                                    url, "||", "true")  # fmt: skip

    assert json.loads(health)["status"] == "ok"
    assert no_token == "401"
    assert no_certificate.startswith("000")  # refused at the TLS handshake
    owner = fresh_host.ssh("ps", "-o", "user=", "-p", "$(cat /run/spectr-agent.pid)").strip()
    assert owner == "spectr"
    config = json.loads(fresh_host.ssh("cat", "/etc/spectr-agent/agent.json"))
    assert AGENT_TOKEN not in json.dumps(config)
    assert len(config["token_sha256"]) == 64
    assert config["client_ca"] == "/etc/spectr-agent/client-ca.crt"


def test_second_bootstrap_changes_nothing(runs: Any) -> None:
    first, second = runs

    assert first.changed_count() > 0
    assert second.changed_count() == 0, [
        name
        for play in second.report["plays"]
        for task in play["tasks"]
        for name in [task["task"]["name"]]
        if task["hosts"]["testhost"].get("changed")
    ]


def test_ops_deploy_a_container_with_the_built_collection(
    runs: Any, fresh_host: TestHost, tmp_path: Path, ansible_env: AnsibleEnvironment
) -> None:
    """The ops path: build the tarball, install it offline, run deploy_app / remove_app."""
    galaxy = [str(Path(sys.executable).parent / "ansible-galaxy"), "collection"]
    subprocess.run([*galaxy, "build", str(COLLECTION), "--output-path", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    installed = tmp_path / "collections"
    subprocess.run([*galaxy, "install", "--offline", "--no-deps", "-p", str(installed),
                    str(tmp_path / tarball_name())],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    ops = AnsibleEnvironment(tmp_path / "home")
    (tmp_path / "home").mkdir()
    site = ansible_env.variables()["ANSIBLE_COLLECTIONS_PATH"].split(":", 1)[1]
    # The checkout is not on this path: spectr.core can only come from the installed tarball.
    ops.extra["ANSIBLE_COLLECTIONS_PATH"] = f"{installed}:{site}"
    inventory = ops.write_inventory({"testhost": fresh_host.inventory_vars(user="ops")})
    fresh_host.load_image("spectr-test-base:latest")
    app = {"app_name": "ops-web", "app_image": "spectr-test-base:latest", "app_pull": "never",
           "app_command": ["sleep", "infinity"]}  # fmt: skip

    deployed = ops.run_playbook("spectr.core.deploy_app", inventory, app)
    labels = fresh_host.ssh("docker", "inspect", "-f", "'{{json .Config.Labels}}'", "ops-web")
    removed = ops.run_playbook("spectr.core.remove_app", inventory, {"app_name": "ops-web"})

    assert deployed.task("Run the application's container")["changed"] is True
    assert json.loads(labels)["spectr.app"] == "ops-web"
    assert removed.task("Remove the application's container")["changed"] is True
