"""Every list, page and endpoint filters by the caller's projects (issue 16), on Postgres.

Two projects, alpha and beta, each with a host, an application, a route, a gateway key, an
operation, an event, a gateway model served by its application, usage of its key and audit
records; plus the fleet's own operation (no project). Callers: a viewer of alpha, a member who
is a viewer in alpha and an operator in beta, an admin of alpha, and a global admin.
What another project owns is neither listed nor shown: its item answers 404, word for word
what a missing one answers; a page action on it is refused (404, or 403 where the role there
is too low). Hosts are rows (SSH to 127.0.0.1:1, no agent): nothing reaches an engine.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from portal.admin import service as admin_service
from portal.catalog.models import LlmModel
from portal.core.audit import AuditEvent
from portal.core.operations.models import QUEUED, SUCCEEDED, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.monitoring.models import HOST_UNREACHABLE, Event
from portal.proxy.models import GatewayKey, GatewayModel, ProxyRoute, UsageRecord
from tests.portal.conftest import ApiClient, _make_postgres_app, in_context
from tests.portal.projects_support import (
    make_app,
    make_host,
    make_project,
    member_api,
    quick_user,
    signed_in,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_app(tmp_path: Path, postgres_migrated: str) -> Iterator[Flask]:
    """The portal on the machine's Postgres, emptied for this test; operations are queued,
    not run."""
    application = _make_postgres_app(tmp_path, postgres_migrated, SPECTR_QUEUE_IMMEDIATE=False)
    with in_context(application):
        yield application


def _operation(project_id: int | None, target: str, state: str = SUCCEEDED) -> Operation:
    operation = Operation(id=str(uuid.uuid4()), kind="noop", target=target, state=state,
                          project_id=project_id, params={})  # fmt: skip
    db.session.add(operation)
    return operation


def _side(project_id: int, owner_id: int) -> SimpleNamespace:
    """One project's things."""
    host = make_host(project_id)
    app = make_app(host)
    tag = host.name
    route = ProxyRoute(name=f"r-{tag}", upstreams=["http://127.0.0.1:9"], project_id=project_id)
    key = GatewayKey(public_id=f"key_{tag}", name=f"k-{tag}", user_id=owner_id, sha256=tag,
                     prefix="sk-", project_id=project_id)  # fmt: skip
    model = GatewayModel(name=f"m-{tag}", replicas=["http://127.0.0.1:9"], application_id=app.id)
    event = Event(kind=HOST_UNREACHABLE, key=f"host:{host.id}", subject=f"ev-{tag}",
                  message="down", project_id=project_id)  # fmt: skip
    usage = UsageRecord(request_id=uuid.uuid4().hex, at=utcnow() - timedelta(minutes=1),
                        key_id=key.public_id, user="u", model=model.name, endpoint="chat",
                        replica="r", status=200, total_tokens=7)  # fmt: skip
    audit = AuditEvent(actor="someone", action=f"test.{tag}", target=f"host:{host.id}",
                       outcome="success", project_id=project_id)  # fmt: skip
    db.session.add_all([route, key, model, event, usage, audit])
    operation = _operation(project_id, f"host:{host.id}", state=QUEUED)
    db.session.commit()
    return SimpleNamespace(host=host, app=app, route=route, key=key, model=model, event=event,
                           operation=operation, audit=audit)  # fmt: skip


@pytest.fixture
def world(pg_app: Flask) -> SimpleNamespace:
    client = pg_app.test_client()
    alpha, beta = make_project("alpha"), make_project("beta")
    admin_user = quick_user("admin")
    a, b = _side(alpha.id, admin_user.id), _side(beta.id, admin_user.id)
    fleet_op = _operation(None, "registry:spectr")
    fleet_audit = AuditEvent(actor="admin", action="test.fleet", target="user:x", outcome="success")
    db.session.add(fleet_audit)
    db.session.commit()
    _, admin_token = admin_service.create_token(admin_user, "t", 1)
    return SimpleNamespace(
        client=client,
        alpha=alpha,
        beta=beta,
        a=a,
        b=b,
        fleet_op=fleet_op,
        admin=ApiClient(client, admin_token),
        viewer=member_api(client, {alpha.id: "viewer"}),
        mixed=member_api(client, {alpha.id: "viewer", beta.id: "operator"}),
        lead=member_api(client, {alpha.id: "admin"}),
        beta_operator=member_api(client, {beta.id: "operator"}),
        # A global operator who is only a viewer in alpha: the role there counts.
        global_operator=member_api(client, {alpha.id: "viewer"}, global_role="operator"),
    )


def _ids(answer: Any, field: str = "id") -> set[Any]:
    assert answer.status_code == 200, answer.get_json()
    return {row[field] for row in answer.get_json()}


def test_operations_are_listed_and_shown_only_in_the_callers_projects(world: Any) -> None:
    a, b = world.a.operation, world.b.operation
    assert _ids(world.viewer.get("/api/v1/operations")) == {a.id}
    assert _ids(world.mixed.get("/api/v1/operations")) == {a.id, b.id}
    assert _ids(world.admin.get("/api/v1/operations")) == {a.id, b.id, world.fleet_op.id}
    mine = world.viewer.get(f"/api/v1/operations/{a.id}")
    assert mine.status_code == 200 and mine.get_json()["project_id"] == world.alpha.id

    for path in ("", "/log", "/log?follow=1"):
        for other in (b.id, world.fleet_op.id, str(uuid.uuid4())):  # fleet's: `default`'s
            answer = world.viewer.get(f"/api/v1/operations/{other}{path}")
            assert answer.status_code == 404, (path, answer.status_code)
            assert answer.get_json()["message"] == f"No operation with id '{other}'."


def test_whoever_started_an_operation_reads_it_whatever_its_project(world: Any) -> None:
    starter = member_api(world.client, {world.alpha.id: "operator"}, global_role="operator")
    started = starter.post("/api/v1/operations", json={"kind": "noop"})
    assert started.status_code == 202 and started.get_json()["project_id"] is None
    assert starter.get(f"/api/v1/operations/{started.get_json()['id']}").status_code == 200
    listed = _ids(starter.get("/api/v1/operations"))
    assert listed == {world.a.operation.id, started.get_json()["id"]}
    assert world.viewer.get(f"/api/v1/operations/{started.get_json()['id']}").status_code == 404


def test_operations_are_cancelled_with_the_role_in_their_project(world: Any) -> None:
    a, b = world.a.operation, world.b.operation
    assert world.mixed.post(f"/api/v1/operations/{a.id}/cancel").status_code == 403
    assert world.viewer.post(f"/api/v1/operations/{b.id}/cancel").status_code == 403  # nowhere
    assert world.global_operator.post(f"/api/v1/operations/{a.id}/cancel").status_code == 403
    assert world.beta_operator.post(f"/api/v1/operations/{a.id}/cancel").status_code == 404
    cancelled = world.mixed.post(f"/api/v1/operations/{b.id}/cancel")
    assert cancelled.status_code == 202 and cancelled.get_json()["state"] == "cancelled"


def test_events_are_listed_and_resolved_only_in_the_callers_projects(world: Any) -> None:
    a, b = world.a.event, world.b.event
    assert _ids(world.viewer.get("/api/v1/monitoring/events")) == {a.id}
    assert _ids(world.admin.get("/api/v1/monitoring/events")) == {a.id, b.id}
    outside = world.beta_operator.post(f"/api/v1/monitoring/events/{a.id}/resolve")
    assert outside.status_code == 404 and outside.get_json()["message"] == f"No event {a.id}."
    assert world.mixed.post(f"/api/v1/monitoring/events/{a.id}/resolve").status_code == 403
    resolved = world.mixed.post(f"/api/v1/monitoring/events/{b.id}/resolve")
    assert resolved.status_code == 200 and resolved.get_json()["state"] == "resolved"


def test_gateway_models_and_usage_are_those_of_the_callers_projects(world: Any) -> None:
    a, b = world.a, world.b
    manual = GatewayModel(name="by-hand", replicas=["http://127.0.0.1:9"])
    db.session.add(manual)
    db.session.commit()
    assert _ids(world.viewer.get("/api/v1/proxy/models"), "name") == {a.model.name}
    assert _ids(world.admin.get("/api/v1/proxy/models"), "name") == {
        a.model.name, b.model.name, "by-hand"
    }  # fmt: skip
    usage = world.viewer.get("/api/v1/proxy/usage?group_by=key")
    assert _ids(usage, "group") == {a.key.public_id}
    assert _ids(world.viewer.get("/api/v1/proxy/usage?group_by=model"), "group") == {a.model.name}
    assert _ids(world.admin.get("/api/v1/proxy/usage?group_by=key"), "group") == {
        a.key.public_id, b.key.public_id
    }  # fmt: skip
    # A global operator who is only a viewer in alpha cannot see beta's model to delete it.
    deleted = world.global_operator.delete(f"/api/v1/proxy/models/{b.model.id}")
    assert deleted.status_code == 404
    assert deleted.get_json()["message"] == f"No gateway model with id {b.model.id}."


def test_model_placement_ranks_only_hosts_the_caller_can_see(world: Any) -> None:
    model = LlmModel(name="tiny", family="llama", parameters_billions=1.0, quantization="fp16",
                     format="safetensors", source_kind="huggingface", source="org/tiny",
                     context_length=2048, license="mit")  # fmt: skip
    db.session.add(model)
    db.session.commit()

    def hosts(api: ApiClient) -> set[int]:
        answer = api.get(f"/api/v1/models/{model.id}/placement")
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        return {row["host_id"] for row in body["candidates"] + body["refused"]}

    assert hosts(world.viewer) == {world.a.host.id}
    assert {world.a.host.id, world.b.host.id} <= hosts(world.admin)


def test_audit_shows_a_project_admin_the_records_of_their_projects(world: Any) -> None:
    actions = {row["action"] for row in world.lead.get("/api/v1/audit").get_json()}
    assert f"test.{world.a.host.name}" in actions
    assert not {f"test.{world.b.host.name}", "test.fleet"} & actions
    assert world.viewer.get("/api/v1/audit").status_code == 403
    everything = {row["action"] for row in world.admin.get("/api/v1/audit").get_json()}
    assert {f"test.{world.a.host.name}", f"test.{world.b.host.name}", "test.fleet"} <= everything


def test_new_operations_carry_the_project_of_what_they_act_on(world: Any) -> None:
    started = world.mixed.post(f"/api/v1/hosts/{world.b.host.id}/bootstrap", json={})
    assert started.status_code == 202, started.get_json()
    assert started.get_json()["project_id"] == world.beta.id
    assert world.viewer.get(f"/api/v1/operations/{started.get_json()['id']}").status_code == 404


# --- pages ---


def test_pages_show_only_the_callers_projects(pg_app: Flask, world: Any) -> None:
    browser, _ = signed_in(pg_app, world.viewer)
    a, b = world.a, world.b
    pages = {
        "/": (a.host.name, b.host.name),
        "/operations": (a.operation.id, b.operation.id),
        "/monitoring": (a.event.subject, b.event.subject),
        "/gateway": (a.model.name, b.model.name),
        "/projects": ('data-project="alpha"', 'data-project="beta"'),
    }
    for path, (shown, hidden) in pages.items():
        page = browser.get(path)
        assert page.status_code == 200, path
        html = page.get_data(as_text=True)
        assert shown in html, path
        assert hidden not in html, path
    assert browser.get(f"/operations/{a.operation.id}").status_code == 200
    assert browser.get(f"/operations/{b.operation.id}").status_code == 404
    assert browser.get(f"/operations/{world.fleet_op.id}").status_code == 404
    assert browser.get(f"/projects/{world.beta.id}").status_code == 404
    assert browser.get("/admin/audit").status_code == 403

    lead, _ = signed_in(pg_app, world.lead)
    audit = lead.get("/admin/audit").get_data(as_text=True)
    assert f"test.{a.host.name}" in audit and f"test.{b.host.name}" not in audit


def test_page_actions_use_the_role_in_the_resources_project(pg_app: Flask, world: Any) -> None:
    browser, csrf = signed_in(pg_app, world.mixed)
    a, b = world.a, world.b
    # Buttons: on beta's host (operator there), not on alpha's (viewer there).
    assert 'id="host-actions"' in browser.get(f"/hosts/{b.host.id}").get_data(as_text=True)
    assert 'id="host-actions"' not in browser.get(f"/hosts/{a.host.id}").get_data(as_text=True)
    assert "op-cancel" in browser.get(f"/operations/{b.operation.id}").get_data(as_text=True)
    assert "op-cancel" not in browser.get(f"/operations/{a.operation.id}").get_data(as_text=True)

    # The POSTs themselves are refused on alpha's things, and done on beta's.
    form = {"csrf_token": csrf}
    refused = {
        f"/hosts/{a.host.id}/forget-host-key": 403,
        f"/apps/{a.app.id}/action/restart": 403,
        f"/gateway/routes/{a.route.id}/delete": 403,
        f"/operations/{a.operation.id}/cancel": 403,
        f"/monitoring/events/{a.event.id}/resolve": 403,
    }
    for path, status in refused.items():
        assert browser.post(path, data=form).status_code == status, path
    assert browser.post(f"/hosts/{b.host.id}/forget-host-key", data=form).status_code == 302
    assert browser.post(f"/gateway/routes/{b.route.id}/delete", data=form).status_code == 302
    assert db.session.get(ProxyRoute, b.route.id) is None
    assert db.session.get(ProxyRoute, a.route.id) is not None

    # A global operator who is a viewer in alpha (operator nowhere): refused, whatever the
    # global role says.
    other, csrf = signed_in(pg_app, world.global_operator)
    form = {"csrf_token": csrf}
    assert other.post(f"/hosts/{a.host.id}/forget-host-key", data=form).status_code == 403
    assert 'id="host-actions"' not in other.get(f"/hosts/{a.host.id}").get_data(as_text=True)
    # An operator of beta only: alpha's things are not found.
    outsider, csrf = signed_in(pg_app, world.beta_operator)
    form = {"csrf_token": csrf}
    assert outsider.post(f"/hosts/{a.host.id}/forget-host-key", data=form).status_code == 404
    assert outsider.post(f"/apps/{a.app.id}/deploy", data=form).status_code == 404
    assert outsider.post(f"/gateway/keys/{a.key.id}/revoke", data=form).status_code == 404
    # A new route from the page goes to a project where the caller is an operator.
    outsider.post("/gateway/routes", data={**form, "name": "nope", "project": "alpha",
                                           "upstreams": "http://127.0.0.1:9"})  # fmt: skip
    outsider.post("/gateway/routes", data={**form, "name": "mine", "project": "beta",
                                           "upstreams": "http://127.0.0.1:9"})  # fmt: skip
    routes = {r.name: r.project_id for r in db.session.query(ProxyRoute)}
    assert "nope" not in routes and routes["mine"] == world.beta.id


def test_project_pages_manage_members_and_quotas(pg_app: Flask, world: Any) -> None:
    admin_user = quick_user("admin")
    admin, admin_csrf = signed_in(pg_app, SimpleNamespace(username=admin_user.username))
    form = {"csrf_token": admin_csrf}
    created = admin.post("/projects", data={**form, "name": "gamma", "gpu_limit": "2"})
    assert created.status_code == 302
    gamma = re.search(r"/projects/(\d+)$", created.headers["Location"])[1]
    newcomer = quick_user()
    added = admin.post(f"/projects/{gamma}/members",
                       data={**form, "username": newcomer.username, "role": "admin"})  # fmt: skip
    assert added.status_code == 302
    page = admin.get(f"/projects/{gamma}").get_data(as_text=True)
    assert f'data-member="{newcomer.username}"' in page and "0 of 2" in page
    assert admin.post(f"/projects/{gamma}", data={**form, "description": "team g",
                      "gpu_limit": "4", "application_limit": ""}).status_code == 302  # fmt: skip
    project = world.admin.get(f"/api/v1/projects/{gamma}").get_json()
    assert (project["gpu_limit"], project["application_limit"]) == (4, None)
    actions = {row["action"] for row in world.admin.get("/api/v1/audit?project_id=" + gamma)
               .get_json()}  # fmt: skip
    assert {"project.create", "project.member.add", "project.update"} <= actions

    # The new project admin manages members, not quotas; alpha's lead does not see gamma.
    browser, csrf = signed_in(pg_app, SimpleNamespace(username=newcomer.username))
    form = {"csrf_token": csrf}
    viewer = quick_user()
    assert browser.post(f"/projects/{gamma}/members",
                        data={**form, "username": viewer.username, "role": "viewer"}
                        ).status_code == 302  # fmt: skip
    quota = browser.post(f"/projects/{gamma}", data={**form, "description": "x", "gpu_limit": "9"})
    assert quota.status_code == 403
    bad = browser.post(f"/projects/{gamma}/members", data={**form, "username": "", "role": "boss"})
    assert bad.status_code == 302  # refused on the page with the fields named, not a 500
    assert "Check these fields:" in browser.get(f"/projects/{gamma}").get_data(as_text=True)
    outsider, csrf = signed_in(pg_app, world.lead)
    assert outsider.get(f"/projects/{gamma}").status_code == 404
    assert outsider.post(f"/projects/{gamma}/members",
                         data={"csrf_token": csrf, "username": "x", "role": "viewer"}
                         ).status_code == 404  # fmt: skip
    deleted = admin.post(f"/projects/{gamma}/delete", data={"csrf_token": admin_csrf})
    assert deleted.status_code == 302
    assert world.admin.get(f"/api/v1/projects/{gamma}").status_code == 404
