"""The agent API contract across releases: today's portal drives the previous agent release
(built from git history in the test), the previous portal release drives today's agent (a fleet
is upgraded one host at a time, before or after its portal), and the portal refuses an agent of
a contract major it does not speak, with a message on the host page.

The repository has no release tags yet: the previous release is the newest `v*` tag when there
is one, else PREVIOUS_RELEASE, the last commit before the agent became a distribution of its own
with a versioned contract (spectr-agent 0.1.0, which reports no contract: it serves 1.0).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from agent import CONTRACT
from agent.tests.harness import REPO_ROOT, AgentProcess, base_image, client_context, unique_name
from portal.core.pki import (
    ca_certificate_path,
    issue_server_certificate,
    portal_client_certificate,
)
from portal.engines.contracts import agent_contract_problem
from portal.engines.errors import Incompatible
from portal.hosts.health import check_all_hosts
from portal.hosts.service import engine_for
from tests.hosts.test_health import bootstrapped_host
from tests.hosts.test_hosts_pages import log_in

PREVIOUS_RELEASE = "475b4ed"


def test_the_portal_speaks_every_minor_of_its_major_and_refuses_others() -> None:
    assert agent_contract_problem(CONTRACT) is None
    assert agent_contract_problem(None) is None  # agents before contracts: 1.0
    assert agent_contract_problem("1.9") is None  # a newer minor only adds
    problem = agent_contract_problem("2.0")
    assert problem is not None and "contract 2.0" in problem and "speaks 1.x" in problem
    assert agent_contract_problem("banana") is not None


def previous_release() -> str:
    tags = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "tag", "--list", "v*", "--sort=-v:refname"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return tags[0] if tags else PREVIOUS_RELEASE


@pytest.fixture
def agent_tls(tmp_path: Path) -> tuple[str, str]:
    cert_pem, key_pem = issue_server_certificate("agent", ["127.0.0.1"])
    (tmp_path / "tls.crt").write_text(cert_pem)
    (tmp_path / "tls.key").write_text(key_pem)
    return str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")


def extract_previous(tmp_path: Path, *paths: str) -> Path:
    """`git archive` of `paths` at the previous release, extracted under tmp_path/previous."""
    source = tmp_path / "previous"
    source.mkdir(exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", previous_release(), *paths],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    return source


@pytest.fixture
def previous_agent(tmp_path: Path, agent_tls: tuple[str, str]) -> Iterator[AgentProcess]:
    """The previous release's agent, extracted with `git archive` and run from its own tree."""
    source = extract_previous(tmp_path, "agent")
    process = AgentProcess(tmp_path, agent_tls, source=source).start()
    yield process
    process.stop()


@pytest.mark.slow
@pytest.mark.docker
def test_todays_portal_drives_the_previous_agent_release(
    app: Flask, previous_agent: AgentProcess
) -> None:
    with httpx.Client(verify=client_context(str(ca_certificate_path()))) as raw:
        health = raw.get(
            f"{previous_agent.url}/v1/health",
            headers={"Authorization": f"Bearer {previous_agent.token}"},
        )
    assert health.json()["agent_version"] == "0.1.0" and "contract" not in health.json()

    host = bootstrapped_host(agent_url=previous_agent.url, agent_token=previous_agent.token)
    check_all_hosts(timeout_s=5)
    assert host.status == "ready", host.status_reason
    assert host.agent_version == "0.1.0"

    engine = engine_for(host)
    name = unique_name("compat")
    try:
        engine.create_container(_spec(name))
        assert engine.inspect_container(name).state == "running"
        assert any(c.name == name for c in engine.list_containers())
        assert engine.exec_run(name, ["echo", "spoken"]).stdout.strip() == "spoken"
    finally:
        engine.remove_container(name, force=True)
        engine.close()


@pytest.mark.slow
@pytest.mark.docker
def test_the_previous_portal_release_drives_todays_agent(
    app: Flask, tmp_path: Path, agent_tls: tuple[str, str]
) -> None:
    """The previous release's portal/ (from git history, nothing of this checkout's portal on its
    path) runs tests/hosts/previous_portal_driver.py: its AgentEngine, built as that release
    built it (Spectr CA, client certificate, token), against today's agent with mutual TLS."""
    source = extract_previous(tmp_path, "portal")
    assert "contract" not in (source / "portal" / "engines" / "agent_client.py").read_text()
    agent = AgentProcess(tmp_path, agent_tls, client_ca=str(ca_certificate_path())).start()
    name, label = unique_name("old-portal"), f"old-portal-{tmp_path.name}"
    settings = {"url": agent.url, "token": agent.token, "ca": str(ca_certificate_path()),
                "client_cert": str(portal_client_certificate()), "image": base_image(),
                "name": name, "label": label}  # fmt: skip
    # -S: no site-packages processing, so no editable install of this checkout is on the path;
    # the venv's site-packages come after the old tree, for the dependencies only.
    path = os.pathsep.join([str(source), *site.getsitepackages()])
    try:
        run = subprocess.run(
            [sys.executable, "-S", str(Path(__file__).parent / "previous_portal_driver.py")],
            input=json.dumps(settings), capture_output=True, text=True, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": path}, timeout=300,
        )  # fmt: skip
    finally:
        agent.stop()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert run.returncode == 0, run.stderr[-3000:] + agent.log_path.read_text()[-2000:]
    seen = json.loads(run.stdout)

    assert seen["portal_source"] == str(source / "portal" / "__init__.py")
    assert seen["health"]["reachable"] and seen["health"]["error"] is None
    assert seen["health"]["agent_version"] == agent_version()
    assert seen["facts"]["hostname"] and seen["facts"]["docker"]
    assert base_image() in seen["images"] and base_image() in seen["image_tags"]
    assert seen["volumes_listed"] and "bridge" in seen["networks"]
    assert "models" in seen["model_cache_keys"]
    assert seen["created"] == {"name": name, "state": "running"}
    assert seen["listed"] == [name]
    assert seen["logs"].strip() == "from-the-previous-portal"
    assert seen["exec"] == {"stdout": "spoken\n", "exit": [0]}
    assert seen["stats_pids"] is not None and seen["stats_pids"] >= 1
    assert (seen["after_stop"], seen["after_start"], seen["after_restart"]) == (
        "exited", "running", "running"
    )  # fmt: skip
    assert seen["listed_after_remove"] == [] and seen["inspect_removed"] == "NotFound"


def agent_version() -> str:
    """This checkout's agent version (the one the agent reports in /v1/health)."""
    from agent import __version__

    return __version__


@pytest.mark.slow
def test_an_agent_of_another_contract_major_is_refused_on_the_host_page(
    app: Flask,
    client: FlaskClient,
    create_user: Any,
    tmp_path: Path,
    agent_tls: tuple[str, str],
) -> None:
    # Today's agent told it serves contract 2.0: what a future, breaking agent reports.
    launcher = [sys.executable, "-c", "import sys, agent; agent.CONTRACT = '2.0'; "
                "from agent.__main__ import main; sys.exit(main())"]  # fmt: skip
    future = AgentProcess(tmp_path, agent_tls, launcher=launcher).start()
    try:
        host = bootstrapped_host(agent_url=future.url, agent_token=future.token)
        check_all_hosts(timeout_s=5)
        assert host.status == "degraded"
        assert host.status_reason.startswith("Incompatible agent: it speaks agent API contract 2.0")

        engine = engine_for(host)
        with pytest.raises(Incompatible, match=r"this portal speaks 1\.x"):
            engine.list_containers()
        health = engine.health()
        assert not health.reachable and "contract 2.0" in (health.contract_problem or "")
        engine.close()

        log_in(client, create_user, "viewer")
        page = client.get(f"/hosts/{host.id}").get_data(as_text=True)
        assert "Incompatible agent: it speaks agent API contract 2.0" in page
        assert "Bootstrap the host again" in page
    finally:
        future.stop()


def _spec(name: str) -> Any:
    from portal.engines import ContainerSpec

    return ContainerSpec(
        image=base_image(), name=name, command=["sleep", "300"], labels={"spectr.test": "compat"}
    )
