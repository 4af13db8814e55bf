"""deploy/compose.yaml end to end: images built offline from the wheelhouse, the stack started as
a user starts it, and checked through its published ports.

Postgres and Redis are the machine's (relayed into the containers): their public images cannot
be pulled here, and the machine's servers prove the same thing — Spectr's images reaching a real
Postgres and Redis by the URLs compose gives them. Nothing else stands in for anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.conftest import admin_password
from tests.deploy.stack import Stack, admin_api, finished_operation, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with admin_api(stack.portal_url, admin_password(stack)) as client:
        yield client


def test_portal_answers_on_the_loopback_port_it_publishes(stack: Stack) -> None:
    health = httpx.get(f"{stack.portal_url}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    bindings = stack.inspect("web")["HostConfig"]["PortBindings"]["8000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(stack.portal_port)}]
    proxy_bindings = stack.inspect("proxy")["HostConfig"]["PortBindings"]["8080/tcp"]
    assert proxy_bindings == [{"HostIp": "127.0.0.1", "HostPort": str(stack.proxy_port)}]


def test_migrate_ran_once_and_the_services_run_as_spectr(stack: Stack) -> None:
    states = {c["Service"]: c for c in stack.containers()}
    assert states["migrate"]["State"] == "exited"
    assert states["migrate"]["ExitCode"] == 0
    for service in ("web", "worker", "proxy"):
        assert states[service]["State"] == "running", states[service]
        assert stack.inspect(service)["Config"]["User"] == "spectr"
    assert "postgres" not in states and "redis" not in states  # the machine's stand in
    # The images' HEALTHCHECKs: the portal's /healthz and the proxy's /metrics answer inside.
    wait_for(
        "web and proxy to be healthy",
        lambda: (
            {c["Service"]: c["Health"] for c in stack.containers()}
            | {"migrate": "healthy", "worker": "healthy"}
            == dict.fromkeys(states, "healthy")
        ),
        timeout=60,
    )


def test_secrets_come_from_files_and_never_sit_in_images_or_environment(stack: Stack) -> None:
    secret_values = {
        path.read_text().strip() for path in stack.secrets_dir.iterdir() if path.is_file()
    }
    for service in ("migrate", "web", "worker", "proxy"):
        environment = "\n".join(stack.inspect(service)["Config"]["Env"])
        assert not any(value in environment for value in secret_values), service
    web_env = stack.inspect("web")["Config"]["Env"]
    assert "SPECTR_SECRET_KEY_FILE=/run/secrets/spectr_secret_key" in web_env
    # The key came from the secret: no key file was generated in the instance folder.
    listing = stack.compose("exec", "-T", "web", "ls", "-A", "/var/lib/spectr/instance")
    assert "secret_key" not in listing.split()


def test_admin_logs_in_and_a_noop_operation_runs_on_the_worker_container(
    stack: Stack, api: httpx.Client
) -> None:
    assert api.get("/api/v1/me").json()["username"] == "admin"
    stack.compose("stop", "--timeout", "5", "worker")
    try:
        accepted = api.post("/api/v1/operations", json={"kind": "noop"})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["Location"]
        time.sleep(3)  # long enough for a worker to have claimed it, were one running
        assert api.get(location).json()["state"] in {"accepted", "queued"}
    finally:
        stack.compose("start", "worker")
    done = finished_operation(api, location)
    assert done["state"] == "succeeded", done
    assert done["result"] == {"noop": True}


def test_proxy_serves_a_route_it_fetched_from_the_portal(stack: Stack, api: httpx.Client) -> None:
    before = httpx.get(f"{stack.proxy_url}/healthz", timeout=5)
    assert before.status_code == 404
    assert before.json()["error"]["code"] == "no_route"
    route = api.post(
        "/api/v1/proxy/routes",
        json={"name": "portal-health", "path_prefix": "/healthz", "upstreams": ["http://web:8000"]},
    )
    assert route.status_code == 201, route.text
    through = wait_for(
        "the proxy to route /healthz to the portal",
        lambda: (r := httpx.get(f"{stack.proxy_url}/healthz", timeout=5)).status_code == 200 and r,
        timeout=30,
    )
    assert through.json()["status"] == "ok"
