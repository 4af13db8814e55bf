"""Credential rotation end to end: a real portal, two bootstrapped SSH test hosts, real agents.

A `spectr run` process bootstraps two Docker-in-Docker hosts (mutual TLS on by default), then
rotates every agent's certificate and token and its own client certificate while one host is
down. Health checks - the portal's sweeps, and a poller here that uses whatever the portal has
stored at each moment over fresh and kept-alive connections - must all succeed on the host that
is up; the host that is down must be reported failed and keep working credentials.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hosts.conftest import PortalProcess, wait_for
from tests.hosts.test_bootstrap_e2e import AGENT_START, follow_log
from tests.support.testhosts import TestHost

pytestmark = [pytest.mark.slow, pytest.mark.docker]

HEALTH_INTERVAL_S = 5  # the shortest the settings allow


class StoredCredentials:
    """What the portal stores for a host, decrypted by the portal's own models."""

    def __init__(self, instance: Path) -> None:
        from portal.app import create_app

        self.app = create_app({"SPECTR_INSTANCE_PATH": str(instance)})

    def __call__(self, host_id: int) -> tuple[str, str]:
        from portal.extensions import db
        from portal.hosts.models import Host

        with self.app.app_context():
            try:
                host = db.session.get_one(Host, host_id)
                return host.agent_token or "", host.agent_certificate or ""
            finally:
                db.session.remove()

    def raw(self, host_id: int) -> str:
        """The row's secret columns as stored on disk."""
        from sqlalchemy import text

        from portal.extensions import db

        with self.app.app_context():
            try:
                query = text("SELECT agent_token, agent_private_key FROM hosts WHERE id = :id")
                return " ".join(db.session.execute(query, {"id": host_id}).one())
            finally:
                db.session.remove()


def portal_context(instance: Path, client_cert: bool = True) -> ssl.SSLContext:
    """Trust the portal's CA and present its current client certificate, as the portal does."""
    context = ssl.create_default_context(cafile=str(instance / "pki" / "ca.crt"))
    if client_cert:
        context.load_cert_chain(str(instance / "pki" / "portal-client.pem"))
    return context


def health(url: str, context: ssl.SSLContext, token: str) -> int:
    with httpx.Client(base_url=url, verify=context, timeout=5, trust_env=False) as client:
        return client.get("/v1/health", headers={"Authorization": f"Bearer {token}"}).status_code


class HealthPoller:
    """GET /v1/health every 100 ms with the token the portal holds at that moment."""

    def __init__(self, url: str, instance: Path, credentials: StoredCredentials, host_id: int):
        self.url, self.instance, self.credentials, self.host_id = (
            url,
            instance,
            credentials,
            host_id,
        )
        self.results: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        kept = httpx.Client(base_url=self.url, verify=portal_context(self.instance), timeout=5)
        while not self._stop.is_set():
            token, _ = self.credentials(self.host_id)
            try:  # a connection kept open across the reloads, and a fresh one
                auth = {"Authorization": f"Bearer {token}"}
                self.results.append(kept.get("/v1/health", headers=auth).status_code)
                self.results.append(health(self.url, portal_context(self.instance), token))
            except httpx.HTTPError as error:
                self.results.append(repr(error))
            time.sleep(0.1)
        kept.close()

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def add_host(portal: PortalProcess, name: str, host: TestHost) -> int:
    response = portal.api.post("/api/v1/hosts", json={
        "name": name, "address": "127.0.0.1", "ssh_port": host.port, "ssh_user": "ops",
        "ssh_private_key": host.private_key_path.read_text(),
        "agent_port": host.published_ports[7443],
    })  # fmt: skip
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def run_operation(portal: PortalProcess, response: httpx.Response) -> tuple[dict, list[str]]:
    """Follow an accepted operation to its end; return it and its log lines."""
    assert response.status_code == 202, response.text
    lines = [i.get("message", "") for i in follow_log(portal, response.json()["id"])]
    return portal.api.get(response.headers["Location"]).json(), lines


def agent_config(host: TestHost) -> dict[str, Any]:
    return json.loads(host.exec("cat", "/etc/spectr-agent/agent.json"))


def test_rotation_replaces_credentials_live_and_a_host_that_is_down_keeps_its_own(
    portal_process: PortalProcess, make_test_host: Any
) -> None:
    portal, instance = portal_process, portal_process.instance
    up = make_test_host("rotate-up", dind=True, extra_ports=(7443,))
    down = make_test_host("rotate-down", dind=True, extra_ports=(7443,))
    settings = {"health_check_interval_seconds": HEALTH_INTERVAL_S}
    assert portal.api.patch("/api/v1/settings", json=settings).status_code == 200
    up_id, down_id = add_host(portal, "rotate-up", up), add_host(portal, "rotate-down", down)
    booted, lines = run_operation(portal, portal.api.post(
        "/api/v1/hosts/bootstrap", json={"host_ids": [up_id, down_id], "forks": 2}))  # fmt: skip
    assert booted["state"] == "succeeded", (booted, lines[-30:])
    stored = StoredCredentials(instance)
    url = f"https://127.0.0.1:{up.published_ports[7443]}"

    _mutual_tls_is_on(up, url, instance, stored(up_id)[0])
    before_up, before_down = stored(up_id), stored(down_id)
    client_before = (instance / "pki" / "portal-client.pem").read_bytes()
    pid = up.exec("cat", "/run/spectr-agent.pid").strip()
    history = portal.api.get(f"/api/v1/hosts/{up_id}").json()["status_changes"]
    down.stop()

    with HealthPoller(url, instance, stored, up_id) as poller:
        started = time.monotonic()
        operation, lines = run_operation(
            portal, portal.api.post("/api/v1/hosts/rotate-credentials", json={})
        )
        elapsed = time.monotonic() - started
        time.sleep(0.5)

    result = operation["result"]
    print(f"\nrotation: {elapsed:.1f} s wall, result {json.dumps(result['steps_seconds'])}, "
          f"{len(poller.results)} health checks by the poller")  # fmt: skip
    assert operation["state"] == "succeeded", (operation, lines[-30:])
    assert result["rotated"] == ["rotate-up"]
    assert result["failed"]["rotate-down"]["step"] == "install"
    assert result["failed"]["rotate-down"]["kind"] == "unreachable"
    assert result["failed"]["rotate-down"]["credentials"] == "unchanged, valid"
    assert len(poller.results) > 40 and set(poller.results) == {200}, poller.results

    after_up = stored(up_id)
    assert after_up[0] != before_up[0] and after_up[1] != before_up[1]
    assert stored(down_id) == before_down
    context = portal_context(instance)
    assert health(url, context, after_up[0]) == 200
    assert health(url, context, before_up[0]) == 401  # the old token is retired
    assert up.exec("cat", "/run/spectr-agent.pid").strip() == pid  # reloaded, never restarted
    config = agent_config(up)
    assert "previous_token_sha256" not in config and config["client_ca"]
    assert (instance / "pki" / "portal-client.pem").read_bytes() != client_before
    assert (
        result["certificates"]["rotate-up"]["sha256"]
        == (portal.api.get(f"/api/v1/hosts/{up_id}").json()["agent_certificate"]["sha256"])
    )
    _health_sweeps_saw_nothing_wrong(portal, up_id, history)
    secrets = [before_up[0], after_up[0], before_down[0], "PRIVATE KEY"]
    _no_secret_anywhere(portal, up, operation, lines, secrets)
    assert not any(secret in stored.raw(up_id) for secret in secrets[:2])  # encrypted at rest

    _down_host_comes_back_with_its_old_credentials_then_rotates_alone(
        portal, down, down_id, before_down[0], stored
    )


def _mutual_tls_is_on(host: TestHost, url: str, instance: Path, token: str) -> None:
    assert agent_config(host)["client_ca"] == "/etc/spectr-agent/client-ca.crt"
    assert health(url, portal_context(instance), token) == 200
    with pytest.raises(httpx.TransportError):  # refused at the handshake: no client certificate
        health(url, portal_context(instance, client_cert=False), token)


def _health_sweeps_saw_nothing_wrong(portal: PortalProcess, host_id: int, history: list) -> None:
    checked_after = time.time()
    shown = wait_for(
        lambda: (h := portal.api.get(f"/api/v1/hosts/{host_id}").json())["last_seen_at"]
        and _epoch(h["last_seen_at"]) > checked_after and h,
        4 * HEALTH_INTERVAL_S + 10, "a health sweep after the rotation",
    )  # fmt: skip
    assert shown["status"] == "ready", shown["status_reason"]
    assert shown["status_changes"] == history  # no transition during or after the rotation


def _no_secret_anywhere(
    portal: PortalProcess, host: TestHost, operation: dict, lines: list[str], secrets: list[str]
) -> None:
    agent_log = host.exec("cat", "/var/log/spectr/spectr-agent.log")
    answers = json.dumps(operation) + portal.api.get("/api/v1/hosts").text
    for text in ("\n".join(lines), answers, portal.log_tail(100_000), agent_log):
        assert not [secret for secret in secrets if secret in text]
    assert any("the old token is refused; rotation complete" in line for line in lines)


def _down_host_comes_back_with_its_old_credentials_then_rotates_alone(
    portal: PortalProcess, host: TestHost, host_id: int, old_token: str, stored: StoredCredentials
) -> None:
    host.start()  # new published ports; the test host has no init system to start the agent
    host.exec(*AGENT_START)
    moved = portal.api.patch(
        f"/api/v1/hosts/{host_id}",
        json={"ssh_port": host.port, "agent_port": host.published_ports[7443]},
    )
    assert moved.status_code == 200, moved.text
    url = f"https://127.0.0.1:{host.published_ports[7443]}"
    context = portal_context(portal.instance)  # the new portal certificate, same CA
    wait_for(lambda: _answers(url, context, old_token), 30, "the agent after its restart")

    operation, lines = run_operation(
        portal, portal.api.post(f"/api/v1/hosts/{host_id}/rotate-credentials", json={})
    )

    assert operation["state"] == "succeeded", (operation, lines[-30:])
    assert operation["result"]["rotated"] == ["rotate-down"]
    assert operation["result"]["portal_certificate"] is None
    new_token, _ = stored(host_id)
    assert health(url, context, new_token) == 200 and health(url, context, old_token) == 401


def _answers(url: str, context: ssl.SSLContext, token: str) -> bool:
    try:
        return health(url, context, token) == 200
    except httpx.TransportError:
        return False


def _epoch(timestamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
