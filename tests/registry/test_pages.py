"""Registry pages: the list with a connection test, repositories, tags with a manifest, delete."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from agent.tests.registry_process import RegistryProcess
from portal.extensions import db
from portal.registry.models import Registry
from tests.portal.conftest import PASSWORD
from tests.registry.seed import push_image

pytestmark = pytest.mark.slow  # a docker-registry process


def login(client: FlaskClient, create_user: Callable[..., Any], role: str) -> str:
    user = create_user(role)
    answer = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert answer.status_code == 302
    page = client.get("/registry").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_pages_browse_describe_and_delete(
    client: FlaskClient,
    create_user: Callable[..., Any],
    spectr_registry: Registry,
    registry_server: RegistryProcess,
) -> None:
    with registry_server.http() as http:
        push_image(http, "team/app", "v1", b"one")
        push_image(http, "team/app", "v2", b"two")
    csrf = login(client, create_user, "operator")
    index = client.get("/registry").get_data(as_text=True)
    assert registry_server.address in index and 'href="/registry"' in index
    checked = client.post(f"/registry/{spectr_registry.id}/check", data={"csrf_token": csrf},
                          follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Connected; the registry speaks registry/2.0" in checked
    repositories = client.get(f"/registry/{spectr_registry.id}").get_data(as_text=True)
    assert "team/app" in repositories
    tag_page = client.get(f"/registry/{spectr_registry.id}/r/team/app?tag=v2").get_data(True)
    assert "linux/amd64" in tag_page and "sha256:" in tag_page and "v1" in tag_page
    deleted = client.post(f"/registry/{spectr_registry.id}/r/team/app/delete",
                          data={"csrf_token": csrf, "tag": "v1"}, follow_redirects=True)  # fmt: skip
    text = deleted.get_data(as_text=True)
    assert "Deleted team/app:v1" in text
    assert ">v1<" not in text and ">v2<" in text


def test_viewer_cannot_delete_and_bad_registry_shows_the_reason(
    client: FlaskClient, create_user: Callable[..., Any], spectr_registry: Registry
) -> None:
    csrf = login(client, create_user, "viewer")
    refused = client.post(f"/registry/{spectr_registry.id}/r/team/app/delete",
                          data={"csrf_token": csrf, "tag": "v1"})  # fmt: skip
    assert refused.status_code == 403
    spectr_registry.password = "wrong"
    db.session.commit()
    page = client.get(f"/registry/{spectr_registry.id}").get_data(as_text=True)
    assert "refused the credentials (401" in page


def test_forms_register_mirror_and_collect(
    client: FlaskClient,
    create_user: Callable[..., Any],
    spectr_registry: Registry,
    start_test_registry: Callable[..., RegistryProcess],
) -> None:
    source = start_test_registry("source", user="bob", password="bob-password")
    with source.http() as http:
        push_image(http, "vendor/tool", "1", b"tool")
    csrf = login(client, create_user, "operator")
    bad = client.post("/registry", data={"csrf_token": csrf, "name": "x", "url": "ftp://x"},
                      follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Check these fields:\nurl: " in bad
    registered = client.post("/registry", data={
        "csrf_token": csrf, "name": "vendor", "url": source.url, "username": "bob",
        "password": "bob-password", "ca_pem": source.ca_pem}, follow_redirects=True)  # fmt: skip
    assert "Registry vendor registered" in registered.get_data(as_text=True)
    vendor = db.session.query(Registry).filter_by(name="vendor").one()
    started = client.post("/registry/mirror", data={
        "csrf_token": csrf, "source": "vendor/tool:1", "source_registry_id": str(vendor.id)})  # fmt: skip
    assert started.status_code == 302 and "/operations/" in started.headers["Location"]
    operation = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "succeeded" in operation
    with registry_http(spectr_registry) as http:
        accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        assert http.get("/v2/vendor/tool/manifests/1", headers=accept).status_code == 200
    collected = client.post(f"/registry/{spectr_registry.id}/gc", data={"csrf_token": csrf})
    assert "/operations/" in collected.headers["Location"]
    # This registry is a test process, not one the role deployed: the operation page says how
    # to make it collectable. Collection itself: tests/registry/test_gc_operation.py.
    outcome = client.get(collected.headers["Location"]).get_data(as_text=True)
    assert "failed" in outcome and "Deploy it again (it keeps its content)" in outcome
    assert "bob-password" not in client.get("/registry").get_data(as_text=True)


def registry_http(registry: Registry) -> Any:
    import ssl

    import httpx

    context = ssl.create_default_context(cadata=registry.ca_pem)
    return httpx.Client(base_url=registry.url, auth=(registry.username, registry.password),
                        verify=context)  # fmt: skip


def test_deploy_form_is_for_admins_and_checks_its_input(
    client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    csrf = login(client, create_user, "admin")
    page = client.get("/registry").get_data(as_text=True)
    assert 'id="deploy-form"' in page and "spectr-node" in page  # the node is a host choice
    refused = client.post("/registry/deploy", data={"csrf_token": csrf, "port": "0"},
                          follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Check these fields:" in refused and "host_id: " in refused and "port: " in refused
