"""Bootstrap failures on a real SSH test host, each with its own reason.

The operations run inline (the test queue), through the real ssh-keyscan, ansible-runner and
sshd of a test host; none of these failures is retried, because retrying cannot help.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.testhosts import SSHKeyPair, TestHost, cleanup_key_pair

pytestmark = [pytest.mark.slow, pytest.mark.docker]
PASSWORD = "right-password-4711"


@pytest.fixture
def password_host(make_test_host: Any) -> TestHost:
    return make_test_host("hosts-auth", password=PASSWORD)


def add_host(api: Any, host: TestHost, **credential: str) -> dict[str, Any]:
    response = api.post(
        "/api/v1/hosts",
        json={"name": "auth-node", "address": host.address, "ssh_port": host.port,
              "ssh_user": "ops", **credential},
    )  # fmt: skip
    assert response.status_code == 201, response.json
    return response.json


def bootstrap(api: Any, host_id: int) -> dict[str, Any]:
    started = api.post(f"/api/v1/hosts/{host_id}/bootstrap", json={})
    assert started.status_code == 202
    return api.get(started.headers["Location"]).json


def test_wrong_password_fails_once_as_authentication(api_as: Any, password_host: TestHost) -> None:
    api = api_as("operator")
    host = add_host(api, password_host, ssh_password="not-the-password")

    operation = bootstrap(api, host["id"])

    assert operation["state"] == "failed"
    assert operation["attempts"] == 1  # no retry for a refused login
    assert operation["error"].startswith("Authentication failed:")
    shown = api.get(f"/api/v1/hosts/{host['id']}").json
    assert shown["status"] == "new" and shown["status_reason"] == operation["error"]
    assert shown["host_key_fingerprint"].startswith("SHA256:")  # the first contact happened
    assert "not-the-password" not in str(api.get(operation["links"]["log"]).json)


def test_wrong_key_fails_once_as_authentication(api_as: Any, password_host: TestHost) -> None:
    api = api_as("operator")
    stranger = SSHKeyPair.generate()
    try:
        host = add_host(api, password_host, ssh_private_key=stranger.private_key_path.read_text())
        operation = bootstrap(api, host["id"])
    finally:
        cleanup_key_pair(stranger)

    assert operation["state"] == "failed" and operation["attempts"] == 1
    assert operation["error"].startswith("Authentication failed:")
    assert "Permission denied" in operation["error"]


def test_changed_host_key_is_refused_with_both_fingerprints(
    api_as: Any, password_host: TestHost
) -> None:
    api = api_as("operator")
    host = add_host(api, password_host, ssh_password="not-the-password")
    bootstrap(api, host["id"])  # first contact records the key (then the login fails)
    recorded = api.get(f"/api/v1/hosts/{host['id']}").json["host_key_fingerprint"]
    # The machine is "reinstalled": new host keys, and sshd (PID 1) reloads them on SIGHUP.
    password_host.exec("sh", "-c", "rm /etc/ssh/ssh_host_* && ssh-keygen -A && kill -HUP 1")
    password_host.wait_for_ssh()
    new = password_host.exec("ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    api.patch(f"/api/v1/hosts/{host['id']}", json={"ssh_password": PASSWORD})

    operation = bootstrap(api, host["id"])

    assert operation["state"] == "failed" and operation["attempts"] == 1
    assert operation["error"].startswith("Host key changed: the host now presents")
    assert new in operation["error"] and recorded in operation["error"]
    shown = api.get(f"/api/v1/hosts/{host['id']}").json
    assert shown["host_key_fingerprint"] == recorded  # never replaced silently
    forgotten = api.delete(f"/api/v1/hosts/{host['id']}/host-key")
    assert forgotten.status_code == 200 and forgotten.json["host_key_fingerprint"] is None
