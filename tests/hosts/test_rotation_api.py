"""The credential rotation endpoints: admin only, audited, 202 with an operation, safe failures.

A rotation against real agents over SSH is in test_credential_rotation_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from portal.core.pki import issue_server_certificate, portal_client_certificate
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.service import get_host
from tests.hosts.conftest import free_port
from tests.hosts.test_hosts_api import add

TOKEN = "old-token-0123456789-abcdefghijklmnop"


def bootstrapped(api: Any, **fields: Any) -> int:
    """A host row as a bootstrap leaves it, whose SSH port and agent port nothing answers."""
    host_id = add(api, address="127.0.0.1", ssh_port=free_port(), **fields).json["id"]
    host = get_host(host_id)
    host.agent_certificate, host.agent_private_key = issue_server_certificate(
        host.name, ["127.0.0.1"]
    )
    host.agent_port, host.agent_token, host.bootstrapped_at = free_port(), TOKEN, utcnow()
    host.agent_url = f"https://127.0.0.1:{host.agent_port}"
    db.session.commit()
    return host_id


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_rotate_credentials(api_as: Any, role: str) -> None:
    admin = api_as("admin")
    host_id = bootstrapped(admin)
    api = api_as(role)

    assert api.post("/api/v1/hosts/rotate-credentials", json={}).status_code == 403
    assert api.post(f"/api/v1/hosts/{host_id}/rotate-credentials", json={}).status_code == 403


def test_hosts_without_an_agent_are_refused_with_a_reason(api_as: Any) -> None:
    api = api_as("admin")
    new = add(api).json["id"]

    one = api.post(f"/api/v1/hosts/{new}/rotate-credentials", json={})
    listed = api.post("/api/v1/hosts/rotate-credentials", json={"host_ids": [new]})
    nothing = api.post("/api/v1/hosts/rotate-credentials", json={"portal_certificate": False})
    unknown = api.post("/api/v1/hosts/424242/rotate-credentials", json={})

    assert one.status_code == listed.status_code == 409
    assert "has no agent to rotate; bootstrap it first" in one.json["message"]
    assert (
        nothing.status_code == 409 and nothing.json["message"] == "No bootstrapped host to rotate."
    )
    assert unknown.status_code == 404


def test_the_portal_certificate_alone_is_replaced_when_no_host_has_an_agent(api_as: Any) -> None:
    api = api_as("admin")
    before = portal_client_certificate().read_bytes()

    started = api.post("/api/v1/hosts/rotate-credentials", json={})
    operation = api.get(started.headers["Location"]).json

    assert started.status_code == 202 and started.json["kind"] == "rotate_agent_credentials"
    assert operation["state"] == "succeeded", operation
    assert operation["result"]["rotated"] == [] and operation["result"]["failed"] == {}
    assert operation["result"]["portal_certificate"]["serial"]
    assert portal_client_certificate().read_bytes() != before


@pytest.mark.slow  # runs ansible-playbook
def test_a_host_that_does_not_answer_keeps_its_credentials_and_fails_the_operation(
    api_as: Any,
) -> None:
    api = api_as("admin")
    host_id = bootstrapped(api)
    certificate = get_host(host_id).agent_certificate

    started = api.post(f"/api/v1/hosts/{host_id}/rotate-credentials", json={})
    operation = api.get(started.headers["Location"]).json
    log = api.get(f"/api/v1/operations/{operation['id']}/log").get_data(as_text=True)

    assert started.status_code == 202 and operation["target"] == f"host:{host_id}"
    assert operation["state"] == "failed" and operation["attempts"] == 1  # never retried blind
    assert operation["error"].startswith("Rotated 0 of 1 host(s)")
    assert "node-1: Host unreachable" in operation["error"]
    db.session.expire_all()
    host = get_host(host_id)
    assert host.agent_token == TOKEN and host.agent_certificate == certificate
    assert TOKEN not in log and "PRIVATE KEY" not in log
    stored = db.session.execute(text("SELECT agent_token FROM hosts WHERE id = :id"),
                                {"id": host_id}).scalar_one()  # fmt: skip
    assert TOKEN not in stored  # encrypted at rest
    audit = api.get("/api/v1/audit", query_string={"action": "host.rotate_credentials"}).json
    assert [(event["target"], event["details"]["hosts"]) for event in audit] == [
        (f"host:{host_id}", ["node-1"])
    ]
