"""Hosts shared between projects, and resources moved between projects, on Postgres.

A share lends a host (optionally N of its GPUs) to another project: its members see the host
read-only and deploy their own applications on it, which count in their own project. A move
takes a host (with its project's applications), an application, a gateway key or a route to
another project whose admin the caller also is, within the target's quotas.

Hosts here are rows (SSH to 127.0.0.1:1, no agent) and applications are created with
deploy=false: nothing reaches an engine or a network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal.apps.models import Application
from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.hosts.models import Host
from portal.proxy.models import GatewayKey, ProxyRoute
from tests.portal.conftest import _make_postgres_app, in_context
from tests.portal.projects_support import (
    make_app,
    make_host,
    make_project,
    member_api,
    signed_in,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(tmp_path: Path, postgres_migrated: str) -> Iterator[Flask]:
    """The portal on Postgres (this module's `client` and helpers use it)."""
    application = _make_postgres_app(tmp_path, postgres_migrated)
    with in_context(application):
        yield application


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


def _audit_projects(action: str) -> set[int]:
    """The projects whose audit trail holds `action`."""
    query = select(AuditEvent.project_id).where(AuditEvent.action == action)
    return set(db.session.scalars(query))


def _new_app(api: Any, host_id: int, name: str, gpus: list[int], **extra: Any) -> Any:
    container = {"image": "registry.local/llm:1", "gpus": gpus}
    body = {"name": name, "host_id": host_id, "container": container, "deploy": False, **extra}
    return api.post("/api/v1/apps", json=body)


def test_a_shared_host_is_seen_read_only_by_the_other_project(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    host = make_host(alpha.id, gpus=4, status="ready")
    owner = member_api(client, {alpha.id: "admin"})
    alpha_operator = member_api(client, {alpha.id: "operator"})
    guest = member_api(client, {beta.id: "admin"})
    url = f"/api/v1/hosts/{host.id}"
    assert guest.get(url).status_code == 404
    assert guest.get("/api/v1/hosts").json == []

    share = {"project": "beta", "gpu_limit": 2}
    assert alpha_operator.post(f"{url}/shares", json=share).status_code == 403
    assert guest.post(f"{url}/shares", json=share).status_code == 404
    made = owner.post(f"{url}/shares", json=share)
    assert made.status_code == 201, made.json
    assert made.json["project"] == "beta" and made.json["gpu_limit"] == 2
    assert _audit_projects("host.share") == {alpha.id, beta.id}
    assert owner.post(f"{url}/shares", json=share).status_code == 409
    own = owner.post(f"{url}/shares", json={"project": "alpha"})
    assert own.status_code == 422 and "project" in own.json["details"]
    assert owner.post(f"{url}/shares", json={"project": "nowhere"}).status_code == 404
    assert [s["project"] for s in owner.get(f"{url}/shares").json] == ["beta"]

    # The guest project sees the host, marked as shared, without the owner's containers.
    listed = guest.get("/api/v1/hosts").json
    assert [(h["name"], h["shared"]) for h in listed] == [(host.name, True)]
    seen = guest.get(url)
    assert seen.status_code == 200 and seen.json["shared"] is True
    assert seen.json["containers"] == [] and len(seen.json["gpus"]) == 4
    assert owner.get(url).json["shared"] is False
    # Read-only as a host: no settings, delete, bootstrap, containers, nor its shares.
    refused = [
        guest.patch(url, json={"labels": {"a": "b"}}),
        guest.delete(url),
        guest.post(f"{url}/bootstrap", json={}),
        guest.get(f"{url}/containers"),
        guest.get(f"{url}/images"),
        guest.get(f"{url}/shares"),
        guest.delete(f"{url}/shares/beta"),
        guest.post(f"{url}/move", json={"project": "beta"}),
    ]
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    assert "shared with your project 'beta'" in refused[0].json["message"]


def test_the_other_project_deploys_its_own_apps_within_its_share(client: Any) -> None:
    alpha = make_project("alpha")
    beta, gamma = make_project("beta", application_limit=2), make_project("gamma")
    host = make_host(alpha.id, gpus=4, status="ready")
    owner = member_api(client, {alpha.id: "admin"})
    guest = member_api(client, {beta.id: "operator", gamma.id: "operator"})
    viewer = member_api(client, {beta.id: "viewer"})
    url = f"/api/v1/hosts/{host.id}"
    assert _new_app(guest, host.id, "early", []).status_code == 404  # not shared yet
    assert owner.post(f"{url}/shares", json={"project": "beta", "gpu_limit": 2}).status_code == 201

    first = _new_app(guest, host.id, "llm", [0, 1])
    assert first.status_code == 201, first.json
    assert first.json["project_id"] == beta.id
    over = _new_app(guest, host.id, "more", [2])
    assert over.status_code == 409 and over.json["code"] == "quota_exceeded"
    assert over.json["details"] == {"quota": "host_share_gpus", "host": host.name, "used": 2,
                                    "requested": 1, "limit": 2}  # fmt: skip
    assert "'host_share_gpus' quota" in over.json["message"]
    assert _new_app(viewer, host.id, "seen", []).status_code == 403
    elsewhere = _new_app(guest, host.id, "g", [], project="gamma")
    assert elsewhere.status_code == 422 and "project" in elsewhere.json["details"]
    assert _new_app(guest, host.id, "a", [], project="alpha").status_code == 404

    # The application and its GPUs count in the deploying project, not the host's.
    usage = owner.get(f"/api/v1/projects/{alpha.id}").json["usage"]
    assert usage["gpus"]["used"] == 0 and usage["applications"]["used"] == 0
    assert guest.get(f"/api/v1/projects/{beta.id}").json["usage"]["gpus"]["used"] == 2
    assert _new_app(guest, host.id, "second", []).status_code == 201
    third = _new_app(guest, host.id, "third", [])
    assert third.status_code == 409 and third.json["details"]["quota"] == "applications"
    # Each project lists its own applications only.
    assert [a["name"] for a in guest.get("/api/v1/apps").json] == ["llm", "second"]
    assert owner.get("/api/v1/apps").json == []
    assert owner.get(f"/api/v1/apps/{first.json['id']}").status_code == 404

    # The share cannot shrink below what is held, nor end while the project has apps there.
    assert owner.patch(f"{url}/shares/beta", json={"gpu_limit": 1}).status_code == 409
    grown = owner.patch(f"{url}/shares/beta", json={"gpu_limit": 3})
    assert grown.status_code == 200 and grown.json["gpu_limit"] == 3
    assert _new_app(guest, host.id, "more", [2]).json["details"]["quota"] == "applications"
    ended = owner.delete(f"{url}/shares/beta")
    assert ended.status_code == 409 and ended.json["details"]["applications"] == ["llm", "second"]
    for app in db.session.scalars(select(Application).where(Application.project_id == beta.id)):
        app.status = "removed"
    db.session.commit()
    assert owner.delete(f"{url}/shares/beta").status_code == 204
    assert _audit_projects("host.unshare") == {alpha.id, beta.id}
    assert guest.get(url).status_code == 404
    assert owner.delete(f"{url}/shares/beta").status_code == 404


def test_moving_a_host_takes_its_projects_apps_within_the_targets_quotas(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    gamma = make_project("gamma", gpu_limit=1)
    host = make_host(alpha.id, gpus=4, status="ready")
    with_gpus, plain = make_app(host, gpus=[0, 1]), make_app(host)
    admin = member_api(client, {alpha.id: "admin", beta.id: "admin", gamma.id: "admin"})
    half = member_api(client, {alpha.id: "admin", gamma.id: "operator"})
    assert (
        admin.post(f"/api/v1/hosts/{host.id}/shares", json={"project": "beta"}).status_code == 201
    )
    guest_app = _new_app(admin, host.id, "guest", [3], project="beta").json
    url = f"/api/v1/hosts/{host.id}/move"

    assert half.post(url, json={"project": "gamma"}).status_code == 403
    assert half.post(url, json={"project": "beta"}).status_code == 404
    over = admin.post(url, json={"project": "gamma"})
    assert over.status_code == 409 and over.json["code"] == "quota_exceeded"
    assert over.json["details"] == {"quota": "gpus", "used": 0, "requested": 2, "limit": 1}
    gamma.gpu_limit = 2
    db.session.commit()
    moved = admin.post(url, json={"project": "gamma"})
    assert moved.status_code == 200, moved.json
    assert moved.json["project_id"] == gamma.id
    db.session.expire_all()
    assert db.session.get(Application, with_gpus.id).project_id == gamma.id
    assert db.session.get(Application, plain.id).project_id == gamma.id
    assert db.session.get(Application, guest_app["id"]).project_id == beta.id  # stays beta's
    assert [s["project"] for s in admin.get(f"/api/v1/hosts/{host.id}/shares").json] == ["beta"]
    assert _audit_projects("host.move") == {alpha.id, gamma.id}
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "host.move")).first()
    assert event.details["from"] == "alpha" and event.details["to"] == "gamma"
    assert sorted(event.details["applications"]) == sorted([with_gpus.name, plain.name])
    assert admin.post(url, json={"project": "gamma"}).status_code == 422  # already there

    # Moved to the project it was shared with, the host is simply its own: the share ends.
    assert admin.post(url, json={"project": "beta"}).status_code == 200
    assert admin.get(f"/api/v1/hosts/{host.id}/shares").json == []


def test_moving_an_application_a_gateway_key_and_a_route(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta", application_limit=1)
    host = make_host(alpha.id, gpus=2, status="ready")
    app = make_app(host, gpus=[0, 1])
    admin = member_api(client, {alpha.id: "admin", beta.id: "admin"})
    operator = member_api(client, {alpha.id: "operator", beta.id: "admin"})
    stranger = member_api(client, {beta.id: "admin"})
    url = f"/api/v1/apps/{app.id}/move"
    to_beta = {"project": "beta"}

    assert operator.post(url, json=to_beta).status_code == 403
    assert stranger.post(url, json=to_beta).status_code == 404
    unshared = admin.post(url, json=to_beta)
    assert unshared.status_code == 422 and "not shared" in unshared.json["details"]["project"][0]
    share = {"project": "beta", "gpu_limit": 1}
    assert admin.post(f"/api/v1/hosts/{host.id}/shares", json=share).status_code == 201
    small = admin.post(url, json=to_beta)
    assert small.status_code == 409 and small.json["details"]["quota"] == "host_share_gpus"
    unlimited = admin.patch(f"/api/v1/hosts/{host.id}/shares/beta", json={"gpu_limit": None})
    assert unlimited.status_code == 200 and unlimited.json["gpu_limit"] is None
    make_app(make_host(beta.id))  # beta's one application: no room for another
    full = admin.post(url, json=to_beta)
    assert full.status_code == 409 and full.json["details"]["quota"] == "applications"
    beta.application_limit = 2
    db.session.commit()
    moved = admin.post(url, json=to_beta)
    assert moved.status_code == 200 and moved.json["project_id"] == beta.id
    assert _audit_projects("app.move") == {alpha.id, beta.id}

    key = admin.post("/api/v1/proxy/keys", json={"name": "k", "project": "alpha"}).json
    route = {"name": "r1", "upstreams": ["http://127.0.0.1:9"], "project": "alpha"}
    route = admin.post("/api/v1/proxy/routes", json=route).json
    for kind, item in (("keys", key), ("routes", route)):
        path = f"/api/v1/proxy/{kind}/{item['id']}/move"
        assert operator.post(path, json=to_beta).status_code == 403
        assert stranger.post(path, json=to_beta).status_code == 404
        answer = admin.post(path, json=to_beta)
        assert answer.status_code == 200 and answer.json["project_id"] == beta.id
    assert db.session.get(GatewayKey, key["id"]).project_id == beta.id
    assert db.session.get(ProxyRoute, route["id"]).project_id == beta.id
    assert _audit_projects("gateway_key.move") == {alpha.id, beta.id}
    assert _audit_projects("route.move") == {alpha.id, beta.id}
    assert [r["name"] for r in stranger.get("/api/v1/proxy/routes").json] == ["r1"]


def test_the_host_page_shares_and_moves_with_the_apis_rules(app: Flask, client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    host = make_host(alpha.id, gpus=2)
    operator, operator_csrf = signed_in(app, member_api(client, {alpha.id: "operator"}))
    outsider, outsider_csrf = signed_in(app, member_api(client, {beta.id: "admin"}))
    # Last: the test's one app context keeps the newest session's CSRF token (see signed_in).
    owner, csrf = signed_in(app, member_api(client, {alpha.id: "admin", beta.id: "admin"}))
    page = f"/hosts/{host.id}"

    # Only the host project's admins get the card, and only they may use its forms.
    assert 'id="host-projects"' not in operator.get(page).get_data(as_text=True)
    refused = operator.post(f"{page}/shares", data={"csrf_token": operator_csrf, "project": "beta"})
    assert refused.status_code == 403
    hidden = outsider.post(f"{page}/move", data={"csrf_token": outsider_csrf, "project": "beta"})
    assert hidden.status_code == 404  # another project's host, as if it did not exist

    assert 'id="host-projects"' in owner.get(page).get_data(as_text=True)
    shared = owner.post(
        f"{page}/shares", data={"csrf_token": csrf, "project": "beta", "gpu_limit": "1"}
    )
    assert shared.status_code == 302
    assert 'data-share="beta"' in owner.get(page).get_data(as_text=True)
    assert _audit_projects("host.share") == {alpha.id, beta.id}
    # Bad input is said on the page, not a 500: an unknown project, a negative GPU count.
    for bad in ({"project": "nowhere"}, {"project": "beta", "gpu_limit": "-1"}):
        answer = owner.post(
            f"{page}/shares", data={"csrf_token": csrf, **bad}, follow_redirects=True
        )
        assert answer.status_code == 200 and 'class="flash error' in answer.get_data(as_text=True)

    moved = owner.post(f"{page}/move", data={"csrf_token": csrf, "project": "beta"})
    assert moved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Host, host.id).project_id == beta.id


def test_the_app_page_moves_an_app_to_a_project_its_host_is_shared_with(
    app: Flask, client: Any
) -> None:
    alpha, beta, gamma = make_project("alpha"), make_project("beta"), make_project("gamma")
    host = make_host(alpha.id, gpus=2)
    application = make_app(host, gpus=[0])
    sharer = member_api(client, {alpha.id: "admin", beta.id: "admin", gamma.id: "admin"})
    assert (
        sharer.post(f"/api/v1/hosts/{host.id}/shares", json={"project": "beta"}).status_code == 201
    )
    operator, _ = signed_in(app, member_api(client, {alpha.id: "operator"}))
    admin, csrf = signed_in(app, sharer)
    page = f"/apps/{application.id}"

    assert 'id="move-app"' not in operator.get(page).get_data(as_text=True)
    form = admin.get(page).get_data(as_text=True)
    # Only where the host may take it: beta has a share, gamma neither owns nor shares the host.
    assert "<option>beta</option>" in form and "<option>gamma</option>" not in form
    moved = admin.post(f"{page}/move", data={"csrf_token": csrf, "project": "beta"})
    assert moved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Application, application.id).project_id == beta.id
    refused = admin.post(f"{page}/move", data={"csrf_token": csrf, "project": "gamma"},
                         follow_redirects=True)  # fmt: skip
    assert "is not shared with project" in refused.get_data(as_text=True)


def test_the_gateway_page_moves_keys_and_routes_for_admins_of_both_projects(
    app: Flask, client: Any
) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    both = member_api(client, {alpha.id: "admin", beta.id: "admin"})
    key = both.post("/api/v1/proxy/keys", json={"name": "k", "project": "alpha"}).json
    route = {"name": "r1", "upstreams": ["http://127.0.0.1:9"], "project": "alpha"}
    route = both.post("/api/v1/proxy/routes", json=route).json
    operator, operator_csrf = signed_in(app, member_api(client, {alpha.id: "operator"}))
    admin, csrf = signed_in(app, both)

    assert 'class="move"' not in operator.get("/gateway").get_data(as_text=True)
    refused = operator.post(f"/gateway/keys/{key['id']}/move",
                            data={"csrf_token": operator_csrf, "project": "beta"})  # fmt: skip
    assert refused.status_code == 403
    page = admin.get("/gateway").get_data(as_text=True)
    assert page.count('class="move"') == 2
    for path in (f"/gateway/keys/{key['id']}/move", f"/gateway/routes/{route['id']}/move"):
        moved = admin.post(path, data={"csrf_token": csrf, "project": "beta"})
        assert moved.status_code == 302
    db.session.expire_all()
    assert db.session.get(GatewayKey, key["id"]).project_id == beta.id
    assert db.session.get(ProxyRoute, route["id"]).project_id == beta.id
