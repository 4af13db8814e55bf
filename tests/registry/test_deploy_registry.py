"""Deploying Spectr's registry on the Spectr node as an operation: the real spectr.core.registry
role through ansible-runner (local connection), TLS from the Spectr CA, htpasswd auth."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from flask import Flask

from portal.core.pki import ca_certificate_pem
from portal.hosts.service import ensure_local_host
from portal.registry import service
from portal.settings.service import get_setting
from tests.registry.seed import push_image

pytestmark = pytest.mark.slow  # two ansible runs of the registry role


def test_deploy_on_the_spectr_node_twice_then_push_with_the_generated_password(
    app: Flask, api_as: Callable, deploy_request: dict
) -> None:
    admin = api_as("admin")
    deploy_request["host_id"] = ensure_local_host().id  # the Spectr node, as a host
    for _ in range(2):  # the second run redeploys idempotently
        accepted = admin.post("/api/v1/registries/spectr/deploy", json=deploy_request)
        assert accepted.status_code == 202, accepted.json
        operation = admin.get(accepted.headers["Location"]).json
        assert operation["state"] == "succeeded", operation["error"]
    address = f"127.0.0.1:{deploy_request['port']}"
    assert operation["result"]["address"] == address
    assert get_setting("registry_address") == address
    password = get_setting("registry_password")
    assert password and password not in str(admin.get("/api/v1/registries/spectr").json)
    registry = service.spectr_registry()
    assert registry is not None and registry.ca_pem == ca_certificate_pem()
    assert service.check_connection(registry)["ok"] is True
    context = ssl.create_default_context(cadata=ca_certificate_pem())
    with httpx.Client(base_url=f"https://{address}", auth=("spectr", password),
                      verify=context) as http:  # fmt: skip
        push_image(http, "deployed/check", "v1", b"hello")
    tags = admin.get(f"/api/v1/registries/{registry.id}/repositories/deployed/check/tags").json
    assert tags["items"] == ["v1"]
    assert Path(deploy_request["storage_path"], "docker").is_dir()  # blobs live where asked
    with httpx.Client(base_url=f"https://{address}", verify=context) as anonymous:
        assert anonymous.get("/v2/").status_code == 401


def test_deploy_needs_admin_and_valid_input(api_as: Callable) -> None:
    assert api_as("operator").post("/api/v1/registries/spectr/deploy", json={}).status_code == 403
    admin = api_as("admin")
    answer = admin.post("/api/v1/registries/spectr/deploy", json={"address": "no port", "port": 0})
    assert answer.status_code == 422
    assert {"address", "port", "host_id"} <= set(answer.json["details"])
    unknown = admin.post("/api/v1/registries/spectr/deploy", json={"host_id": 4242})
    assert unknown.status_code == 404
