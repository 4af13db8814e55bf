"""Registering, checking and browsing real registries (docker-registry on 127.0.0.1, TLS+auth)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from agent.tests.registry_process import RegistryProcess, free_port
from portal.extensions import db
from portal.registry.models import Registry
from tests.registry.seed import push_image, push_multiplatform

pytestmark = pytest.mark.slow  # starts docker-registry processes


def register(api: Any, registry: RegistryProcess, **overrides: Any) -> dict:
    body = {"name": "harbor", "url": registry.url, "username": registry.user,
            "password": registry.password, "ca_pem": registry.ca_pem, **overrides}  # fmt: skip
    answer = api.post("/api/v1/registries", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json


def test_register_and_check_a_registry_keeps_the_password_secret(
    api_as: Callable, registry_server: RegistryProcess
) -> None:
    api = api_as("operator")
    created = register(api, registry_server)
    assert "password" not in created and created["has_password"] is True
    stored = db.session.execute(text("SELECT password FROM registries")).scalar()
    assert registry_server.password not in stored  # encrypted at rest
    check = api.post(f"/api/v1/registries/{created['id']}/check")
    assert check.status_code == 200
    assert check.json["ok"] is True, check.json
    assert check.json["api_version"] == "registry/2.0"
    shown = api.get(f"/api/v1/registries/{created['id']}").json
    assert shown["last_check_ok"] is True and registry_server.password not in str(shown)


def test_wrong_password_says_the_registry_refused_the_credentials(
    api_as: Callable, registry_server: RegistryProcess
) -> None:
    api = api_as("operator")
    created = register(api, registry_server, password="not-the-password")
    check = api.post(f"/api/v1/registries/{created['id']}/check").json
    assert check["ok"] is False
    assert "refused the credentials (401" in check["message"]
    browse = api.get(f"/api/v1/registries/{created['id']}/repositories")
    assert browse.status_code == 502
    assert browse.json["code"] == "registry_auth_failed"
    assert "not-the-password" not in browse.get_data(as_text=True)

    # Fixing only the password is a PATCH of only the password; the rest stays as it was.
    fixed = api.patch(
        f"/api/v1/registries/{created['id']}", json={"password": registry_server.password}
    )
    assert fixed.status_code == 200, fixed.json
    assert (fixed.json["name"], fixed.json["url"]) == (created["name"], created["url"])
    assert api.post(f"/api/v1/registries/{created['id']}/check").json["ok"] is True


def test_untrusted_certificate_and_unreachable_registry_are_told_apart(
    api_as: Callable, registry_server: RegistryProcess
) -> None:
    api = api_as("operator")
    no_ca = register(api, registry_server, name="no-ca", ca_pem=None)
    check = api.post(f"/api/v1/registries/{no_ca['id']}/check").json
    assert check["ok"] is False and "TLS handshake" in check["message"]
    nowhere = register(api, registry_server, name="nowhere", url=f"https://127.0.0.1:{free_port()}")
    check = api.post(f"/api/v1/registries/{nowhere['id']}/check").json
    assert check["ok"] is False and "Cannot reach registry" in check["message"]


def test_bad_input_gets_a_clear_422(api_as: Callable, registry_server: RegistryProcess) -> None:
    api = api_as("operator")
    answer = api.post("/api/v1/registries", json={"name": "x", "url": "ftp://nope"})
    assert answer.status_code == 422 and "url" in answer.json["details"]
    answer = api.post(
        "/api/v1/registries", json={"name": "x", "url": registry_server.url, "ca_pem": "junk"}
    )
    assert answer.status_code == 422 and "ca_pem" in answer.json["details"]
    created = register(api, registry_server)
    answer = api.get(f"/api/v1/registries/{created['id']}/repositories/UPPER/tags")
    assert answer.status_code == 422
    assert register_duplicate(api, registry_server) == 409


def register_duplicate(api: Any, registry: RegistryProcess) -> int:
    body = {"name": "harbor", "url": registry.url}
    return api.post("/api/v1/registries", json=body).status_code


def test_browse_pages_through_tags_and_describes_manifests(
    api_as: Callable, spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    with registry_server.http() as http:
        digests = {f"v{i}": push_image(http, "team/app", f"v{i}", b"same") for i in range(5)}
        index_digest = push_multiplatform(http, "team/multi", "1.0")
    api = api_as("viewer")
    base = f"/api/v1/registries/{spectr_registry.id}"
    assert api.get(f"{base}/repositories").json == {
        "items": ["team/app", "team/multi"], "next_last": None}  # fmt: skip
    seen, last = [], None
    while True:
        query = f"?n=2&last={last}" if last else "?n=2"
        page = api.get(f"{base}/repositories/team/app/tags{query}").json
        assert len(page["items"]) <= 2
        seen += page["items"]
        last = page["next_last"]
        if not last:
            break
    assert seen == ["v0", "v1", "v2", "v3", "v4"]
    single = api.get(f"{base}/repositories/team/app/tags/v3").json
    assert single["digest"] == digests["v3"]
    assert single["platforms"] == ["linux/amd64"] and single["created"] == "2026-01-02T03:04:05Z"
    assert single["size"] > 0 and single["layers"] == 1
    multi = api.get(f"{base}/repositories/team/multi/tags/1.0").json
    assert multi["digest"] == index_digest
    assert multi["platforms"] == ["linux/amd64", "linux/arm64"]
    missing = api.get(f"{base}/repositories/team/app/tags/nope")
    assert missing.status_code == 404


def test_delete_tag_removes_it_and_needs_operator(
    api_as: Callable, spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    with registry_server.http() as http:
        push_image(http, "team/app", "old", b"old content")
        push_image(http, "team/app", "keep", b"kept content")
    base = f"/api/v1/registries/{spectr_registry.id}/repositories/team/app/tags"
    assert api_as("viewer").delete(f"{base}/old").status_code == 403
    operator = api_as("operator")
    deleted = operator.delete(f"{base}/old")
    assert deleted.status_code == 200 and deleted.json["digest"].startswith("sha256:")
    assert operator.get(f"{base}/old").status_code == 404
    assert operator.get(base).json["items"] == ["keep"]


def test_hosts_and_apps_get_trust_and_login_only_for_spectr_images(
    spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    from portal.registry import service

    trust = service.bootstrap_extravars()["docker_engine_registry_cas"]
    assert trust == [{"registry": registry_server.address, "ca_pem": registry_server.ca_pem}]
    login = service.app_registry_login(f"{registry_server.address}/team/app:v1")
    assert login == {"url": registry_server.address, "username": registry_server.user,
                     "password": registry_server.password}  # fmt: skip
    assert service.app_registry_login("docker.io/library/nginx:1") == {}


def test_access_operation_needs_known_hosts(api_as: Callable, spectr_registry: Registry) -> None:
    api = api_as("operator")
    answer = api.post("/api/v1/registries/spectr/access", json={"host_ids": [4242]})
    assert answer.status_code == 404
    assert api.post("/api/v1/registries/spectr/access", json={"host_ids": []}).status_code == 422
