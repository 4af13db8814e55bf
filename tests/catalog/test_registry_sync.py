"""The image catalog filled from a real registry (Debian's docker-registry with TLS and
htpasswd on 127.0.0.1): each tag becomes a catalog image with its digest and size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.tests.registry_process import RegistryProcess
from portal.extensions import db
from portal.registry.models import Registry
from tests.portal.conftest import ApiClient
from tests.registry.conftest import registry_server, start_test_registry  # noqa: F401
from tests.registry.seed import push_image

pytestmark = pytest.mark.slow  # a docker-registry process


def test_sync_adds_each_tag_with_digest_and_size(
    api_as: Callable[[str], ApiClient],
    registry_server: RegistryProcess,  # noqa: F811
) -> None:
    with registry_server.http() as http:
        first = push_image(http, "team/llm-server", "1.0", b"first build")
        second = push_image(http, "team/llm-server", "1.1", b"second build, a little larger")
    row = Registry(name="lab", url=registry_server.url, username=registry_server.user,
                   password=registry_server.password, ca_pem=registry_server.ca_pem)  # fmt: skip
    db.session.add(row)
    db.session.commit()
    api = api_as("operator")
    started = api.post(
        "/api/v1/catalog/images/sync", json={"registry_id": row.id, "repository": "team/llm-server"}
    )
    assert started.status_code == 202, started.json
    done = api.get(f"/api/v1/operations/{started.json['id']}").json
    log = api.get(f"/api/v1/operations/{started.json['id']}/log").json
    assert done["state"] == "succeeded", (done, log)
    assert done["result"]["added"] == 2
    images = {i["reference"]: i for i in api.get("/api/v1/catalog/images").json}
    one = images[f"{registry_server.address}/team/llm-server:1.0"]
    assert (
        one["digest"] == first
        and one["registry"] == registry_server.address
        and one["tag"] == "1.0"
    )
    assert images[f"{registry_server.address}/team/llm-server:1.1"]["digest"] == second
    assert one["size_bytes"] > 0
    again = api.post(
        "/api/v1/catalog/images/sync", json={"registry_id": row.id, "repository": "team/llm-server"}
    )
    assert api.get(f"/api/v1/operations/{again.json['id']}").json["result"]["added"] == 0
    missing = api.post(
        "/api/v1/catalog/images/sync", json={"registry_id": row.id, "repository": "team/none"}
    )
    failed = api.get(f"/api/v1/operations/{missing.json['id']}").json
    assert failed["state"] == "failed" and failed["error"]
    assert (
        api.post(
            "/api/v1/catalog/images/sync", json={"registry_id": 99999, "repository": "x"}
        ).status_code
        == 404
    )


def test_sync_form_on_the_catalog_page(
    client: Any,
    create_user: Callable[..., Any],
    registry_server: RegistryProcess,  # noqa: F811
) -> None:
    import re

    from tests.portal.conftest import PASSWORD

    with registry_server.http() as http:
        push_image(http, "team/page", "2.0", b"from the page")
    row = Registry(name="lab", url=registry_server.url, username=registry_server.user,
                   password=registry_server.password, ca_pem=registry_server.ca_pem)  # fmt: skip
    db.session.add(row)
    db.session.commit()
    user = create_user("operator")
    client.post("/login", data={"username": user.username, "password": PASSWORD})
    page = client.get("/catalog").get_data(as_text=True)
    assert 'id="sync-images"' in page
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    answer = client.post(
        "/catalog/images/sync",
        data={"csrf_token": csrf, "registry_id": row.id, "repository": "team/page"},
    )
    assert answer.status_code == 302 and "/operations/" in answer.location
    assert f"{registry_server.address}/team/page:2.0" in client.get("/catalog").get_data(
        as_text=True
    )
