"""Projects: the API, what each member sees and may do, scoped tokens, quotas, audit records.

Hosts here are rows (SSH to 127.0.0.1:1, no agent): nothing reaches an engine or a network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from portal.core.audit import AuditEvent
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import HostGpu
from portal.projects.models import DEFAULT_PROJECT, Project, ProjectMember
from portal.proxy.models import UsageRecord
from tests.portal.conftest import PASSWORD, ApiClient
from tests.portal.projects_support import make_app, make_host, make_project, member_api

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"


def _audit(action: str) -> AuditEvent:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id.desc())
    return db.session.scalars(query).first()


def test_admins_create_projects_and_project_admins_manage_members(
    client: Any, api_as: Callable[[str], ApiClient]
) -> None:
    admin = api_as("admin")
    created = admin.post("/api/v1/projects", json={"name": "alpha", "gpu_limit": 4})
    assert created.status_code == 201
    alpha = created.json
    assert alpha["usage"] == {
        "gpus": {"used": 0, "limit": 4},
        "applications": {"used": 0, "limit": None},
        "gpus_per_model": {},
        "gpu_memory_mib": {"used": 0, "limit": None},
        "gateway_rpm": {"used": 0, "limit": None},
        "gateway_tokens_per_day": {"used": 0, "limit": None},
        "gateway_tokens_per_month": {"used": 0, "limit": None},
    }
    assert _audit("project.create").project_id == alpha["id"]
    assert admin.post("/api/v1/projects", json={"name": "alpha"}).status_code == 409
    bad = admin.post("/api/v1/projects", json={"name": "Not Valid", "gpu_limit": -1})
    assert bad.status_code == 422 and set(bad.json["details"]) == {"name", "gpu_limit"}

    lead = member_api(client, {alpha["id"]: "admin"}, global_role="viewer")
    worker = member_api(client, {alpha["id"]: "operator"}, global_role="operator")
    assert lead.post("/api/v1/projects", json={"name": "beta"}).status_code == 403
    assert [p["name"] for p in lead.get("/api/v1/projects").json] == ["alpha"]
    assert lead.get(f"/api/v1/projects/{alpha['id']}").json["role"] == "admin"

    added = lead.post(
        f"/api/v1/projects/{alpha['id']}/members", json={"username": "nobody", "role": "viewer"}
    )
    assert added.status_code == 404 and added.json["details"] == {"username": ["no such user"]}
    outsider = member_api(client, {})
    body = {"username": outsider.username, "role": "viewer"}
    assert worker.post(f"/api/v1/projects/{alpha['id']}/members", json=body).status_code == 403
    assert lead.post(f"/api/v1/projects/{alpha['id']}/members", json=body).status_code == 201
    assert _audit("project.member.add").project_id == alpha["id"]
    assert outsider.get(f"/api/v1/projects/{alpha['id']}").json["role"] == "viewer"
    item = f"/api/v1/projects/{alpha['id']}/members/{outsider.user_id}"
    assert lead.patch(item, json={"role": "operator"}).json["role"] == "operator"
    assert lead.patch(item, json={"role": "owner"}).status_code == 422
    assert lead.delete(item).status_code == 204
    assert outsider.get(f"/api/v1/projects/{alpha['id']}").status_code == 404

    # A project admin changes the description, not the quotas (those are the fleet's).
    project = f"/api/v1/projects/{alpha['id']}"
    assert lead.patch(project, json={"description": "team a"}).status_code == 200
    assert lead.patch(project, json={"gpu_limit": 100}).status_code == 403
    assert admin.patch(project, json={"gpu_limit": 8}).json["gpu_limit"] == 8


def test_a_project_is_deleted_only_when_empty_and_default_stays(
    api_as: Callable[[str], ApiClient],
) -> None:
    admin = api_as("admin")
    alpha = make_project("alpha")
    make_host(alpha.id)
    refused = admin.delete(f"/api/v1/projects/{alpha.id}")
    assert refused.status_code == 409 and refused.json["details"] == {"hosts": 1}
    default = db.session.scalar(select(Project).where(Project.name == DEFAULT_PROJECT))
    assert admin.delete(f"/api/v1/projects/{default.id}").status_code == 409
    empty = make_project("empty")
    assert admin.delete(f"/api/v1/projects/{empty.id}").status_code == 204
    assert admin.get(f"/api/v1/projects/{empty.id}").status_code == 404
    assert _audit("project.delete").project_id == empty.id


def test_new_users_join_default_with_their_global_role(create_user: Callable[..., Any]) -> None:
    user = create_user("operator")
    rows = db.session.scalars(select(ProjectMember).where(ProjectMember.user_id == user.id)).all()
    assert [(row.project.name, row.role) for row in rows] == [(DEFAULT_PROJECT, "operator")]


def test_hosts_of_other_projects_are_not_listed_and_answer_404(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    mine, theirs = make_host(alpha.id), make_host(beta.id)
    api = member_api(client, {alpha.id: "operator"})
    assert [h["name"] for h in api.get("/api/v1/hosts").json] == [mine.name]
    assert api.get(f"/api/v1/hosts/{mine.id}").json["project_id"] == alpha.id
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"labels": {"a": "b"}}} if method == "patch" else {}
        answer = getattr(api, method)(f"/api/v1/hosts/{theirs.id}", **kwargs)
        assert answer.status_code == 404
        assert answer.json["message"] == f"No host with id {theirs.id}."
    assert api.get(f"/api/v1/hosts/{theirs.id}/containers").status_code == 404


def test_a_role_counts_in_its_own_project_only(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    in_alpha, in_beta = make_host(alpha.id), make_host(beta.id)
    api = member_api(client, {alpha.id: "viewer", beta.id: "operator"}, global_role="viewer")
    change = {"labels": {"team": "x"}}
    assert api.patch(f"/api/v1/hosts/{in_alpha.id}", json=change).status_code == 403
    patched = api.patch(f"/api/v1/hosts/{in_beta.id}", json=change)
    assert patched.status_code == 200, patched.json
    assert _audit("host.update").project_id == beta.id

    new = {"name": "n1", "address": "127.0.0.1", "ssh_private_key": KEY}
    assert api.post("/api/v1/hosts", json={**new, "project": "alpha"}).status_code == 403
    assert api.post("/api/v1/hosts", json={**new, "project": "gamma"}).status_code == 404
    created = api.post("/api/v1/hosts", json={**new, "project": "beta"})
    assert created.status_code == 201 and created.json["project_id"] == beta.id
    assert _audit("host.create").project_id == beta.id

    app_body = {"name": "web", "host_id": in_alpha.id, "deploy": False,
                "container": {"image": "registry.local/web:1"}}  # fmt: skip
    assert api.post("/api/v1/apps", json=app_body).status_code == 403
    made = api.post("/api/v1/apps", json={**app_body, "host_id": in_beta.id})
    assert made.status_code == 201 and made.json["project_id"] == beta.id


def test_a_new_resource_goes_to_the_callers_only_project(client: Any) -> None:
    alpha = make_project("alpha")
    api = member_api(client, {alpha.id: "operator"})
    new = {"name": "solo", "address": "127.0.0.1", "ssh_private_key": KEY}
    assert api.post("/api/v1/hosts", json=new).json["project_id"] == alpha.id
    route = {"name": "r1", "upstreams": ["http://127.0.0.1:9"]}
    assert api.post("/api/v1/proxy/routes", json=route).json["project_id"] == alpha.id


def test_applications_of_other_projects_are_not_listed_and_answer_404(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    mine, theirs = make_app(make_host(alpha.id)), make_app(make_host(beta.id))
    api = member_api(client, {alpha.id: "operator"})
    assert [a["name"] for a in api.get("/api/v1/apps").json] == [mine.name]
    for path in ("", "/revisions", "/logs"):
        assert api.get(f"/api/v1/apps/{theirs.id}{path}").status_code == 404
    for action in ("deploy", "stop", "remove", "exec"):
        body = {"argv": ["true"]} if action == "exec" else {}
        assert api.post(f"/api/v1/apps/{theirs.id}/{action}", json=body).status_code == 404
    assert api.delete(f"/api/v1/apps/{theirs.id}").status_code == 404
    assert api.delete(f"/api/v1/apps/{mine.id}").status_code == 204
    assert _audit("app.delete").project_id == alpha.id


def test_the_last_gpu_of_the_quota_fits_and_the_next_is_refused(client: Any) -> None:
    alpha = make_project("alpha", gpu_limit=3)
    host = make_host(alpha.id, gpus=4, status="ready")
    api = member_api(client, {alpha.id: "operator"})

    def new_app(name: str, gpus: list[int]) -> Any:
        container = {"image": "registry.local/llm:1", "gpus": gpus}
        return api.post(
            "/api/v1/apps",
            json={"name": name, "host_id": host.id, "container": container, "deploy": False},
        )

    assert new_app("two", [0, 1]).status_code == 201
    assert new_app("last", [2]).status_code == 201  # the third GPU of three fits
    over = new_app("over", [3])
    assert over.status_code == 409 and over.json["code"] == "quota_exceeded"
    assert over.json["details"] == {"quota": "gpus", "used": 3, "requested": 1, "limit": 3}
    assert "'gpus' quota" in over.json["message"]
    usage = api.get(f"/api/v1/projects/{alpha.id}").json["usage"]
    assert usage["gpus"] == {"used": 3, "limit": 3}


H100 = "NVIDIA H100 80GB HBM3"


def _gpu_api(client: Any, project: Project, host: Any) -> Callable[..., Any]:
    """A function that creates an application (not deployed) on `host` with some GPUs."""
    api = member_api(client, {project.id: "operator"})

    def new_app(name: str, gpus: list[int]) -> Any:
        container = {"image": "registry.local/llm:1", "gpus": gpus}
        body = {"name": name, "host_id": host.id, "container": container, "deploy": False}
        return api.post("/api/v1/apps", json=body)

    new_app.api = api  # type: ignore[attr-defined]
    return new_app


def test_the_last_gpu_of_a_model_fits_and_the_next_is_refused(client: Any) -> None:
    alpha = make_project("alpha", gpu_model_limits={H100: 2})
    host = make_host(alpha.id, gpus=2, status="ready")  # GPUs 0 and 1: NVIDIA A10
    host.gpus += [HostGpu(index=i, model=H100, memory_total_mib=81559) for i in (2, 3, 4)]
    db.session.commit()
    new_app = _gpu_api(client, alpha, host)

    first = new_app("first", [2])
    assert first.status_code == 201
    assert new_app("last", [3]).status_code == 201  # the second H100 of two fits
    over = new_app("over", [4])
    assert over.status_code == 409 and over.json["code"] == "quota_exceeded"
    assert over.json["details"] == {
        "quota": "gpus_per_model", "model": H100, "used": 2, "requested": 1, "limit": 2
    }  # fmt: skip
    assert f"'gpus_per_model' quota for '{H100}'" in over.json["message"]
    mixed = new_app("mixed", [0, 4])  # one A10 (no limit) does not carry an H100 through
    assert mixed.status_code == 409 and mixed.json["details"]["model"] == H100
    assert new_app("a10s", [0, 1]).status_code == 201  # another model: gpu_limit alone
    # A new revision of an application holding an H100 keeps it: not counted twice.
    again = {"container": {"image": "registry.local/llm:2", "gpus": [2]}, "deploy": False}
    revised = new_app.api.post(f"/api/v1/apps/{first.json['id']}/revisions", json=again)
    assert revised.status_code == 201

    usage = new_app.api.get(f"/api/v1/projects/{alpha.id}").json["usage"]
    assert usage["gpus_per_model"] == {
        "NVIDIA A10": {"used": 2, "limit": None}, H100: {"used": 2, "limit": 2}
    }  # fmt: skip
    assert usage["gpus"] == {"used": 4, "limit": None}
    assert usage["gpu_memory_mib"] == {"used": 2 * 23028 + 2 * 81559, "limit": None}


def test_the_last_mib_of_gpu_memory_fits_and_the_next_gpu_is_refused(client: Any) -> None:
    alpha = make_project("alpha", gpu_memory_limit_mib=2 * 23028)  # two A10s' memory
    host = make_host(alpha.id, gpus=3, status="ready")
    new_app = _gpu_api(client, alpha, host)
    assert new_app("pair", [0, 1]).status_code == 201  # exactly the limit
    over = new_app("over", [2])
    assert over.status_code == 409 and over.json["code"] == "quota_exceeded"
    assert over.json["details"] == {
        "quota": "gpu_memory_mib", "used": 46056, "requested": 23028, "limit": 46056
    }  # fmt: skip
    assert (
        "'gpu_memory_mib' quota: 46056 of 46056 MiB in use, 23028 more asked"
        in (over.json["message"])
    )
    assert new_app("cpu-only", []).status_code == 201  # no GPU, no memory asked


def test_quota_fields_are_validated_by_name_and_set_by_global_admins(
    client: Any, api_as: Callable[[str], ApiClient]
) -> None:
    admin = api_as("admin")
    bad = admin.post("/api/v1/projects", json={
        "name": "beta", "gpu_model_limits": {H100: -1}, "gpu_memory_limit_mib": "lots",
        "gateway_rpm_limit": -5, "gateway_tokens_per_day_limit": "a lot",
        "gateway_tokens_per_month_limit": 10**16,
    })  # fmt: skip
    assert bad.status_code == 422
    assert set(bad.json["details"]) == {
        "gpu_model_limits", "gpu_memory_limit_mib", "gateway_rpm_limit",
        "gateway_tokens_per_day_limit", "gateway_tokens_per_month_limit",
    }  # fmt: skip
    quotas = {"gpu_model_limits": {H100: 4}, "gpu_memory_limit_mib": 327680,
              "gateway_rpm_limit": 600, "gateway_tokens_per_day_limit": 10**6,
              "gateway_tokens_per_month_limit": 3 * 10**10}  # fmt: skip
    created = admin.post("/api/v1/projects", json={"name": "beta", **quotas})
    assert created.status_code == 201
    assert {name: created.json[name] for name in quotas} == quotas
    usage = created.json["usage"]
    assert usage["gpus_per_model"] == {H100: {"used": 0, "limit": 4}}
    assert usage["gateway_tokens_per_month"] == {"used": 0, "limit": 3 * 10**10}

    item = f"/api/v1/projects/{created.json['id']}"
    lead = member_api(client, {created.json["id"]: "admin"})
    for name in quotas:
        assert lead.patch(item, json={name: None}).status_code == 403  # the fleet's to set
    changed = admin.patch(item, json={"gpu_model_limits": None, "gateway_rpm_limit": 0})
    assert changed.status_code == 200
    assert (changed.json["gpu_model_limits"], changed.json["gateway_rpm_limit"]) == (None, 0)
    assert _audit("project.update").details == {"gpu_model_limits": None, "gateway_rpm_limit": 0}


def test_gateway_usage_counts_the_projects_requests_and_tokens(
    api_as: Callable[[str], ApiClient],
) -> None:
    alpha = make_project("alpha", gateway_rpm_limit=60, gateway_tokens_per_day_limit=1000)
    if 60 - time.time() % 60 < 5:  # keep the records and the question in one minute
        time.sleep(60 - time.time() % 60 + 0.1)
    now = utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for i, (at, tokens, project) in enumerate([
        (now, 30, alpha.id), (now, 12, alpha.id), (day, 100, alpha.id),
        (now - timedelta(days=40), 500, alpha.id),  # last month (or earlier): not counted
        (now, 7, alpha.id + 1000),  # another project's
    ]):  # fmt: skip
        db.session.add(UsageRecord(request_id=f"r{i}", at=at, key_id="k", user="u", model="m",
                                   endpoint="/v1/chat/completions", replica="r", status=200,
                                   total_tokens=tokens, project_id=project))  # fmt: skip
    db.session.commit()
    usage = api_as("admin").get(f"/api/v1/projects/{alpha.id}").json["usage"]
    assert usage["gateway_tokens_per_day"] == {"used": 142, "limit": 1000}
    assert usage["gateway_tokens_per_month"] == {"used": 142, "limit": None}
    assert usage["gateway_rpm"]["limit"] == 60
    this_minute = 3 if day == now.replace(second=0, microsecond=0) else 2  # 00:00 holds `day`
    assert usage["gateway_rpm"]["used"] == this_minute


def test_the_application_quota_refuses_one_too_many(client: Any) -> None:
    alpha = make_project("alpha", application_limit=1)
    host = make_host(alpha.id, status="ready")
    api = member_api(client, {alpha.id: "operator"})
    body = {"host_id": host.id, "deploy": False, "container": {"image": "registry.local/w:1"}}
    assert api.post("/api/v1/apps", json={**body, "name": "one"}).status_code == 201
    two = api.post("/api/v1/apps", json={**body, "name": "two"})
    assert two.status_code == 409 and two.json["details"]["quota"] == "applications"


def test_a_project_token_cannot_reach_another_projects_logs_exec_or_gateway_key(
    client: Any, api_as: Callable[[str], ApiClient]
) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    theirs_host = make_host(beta.id)
    theirs_app = make_app(theirs_host)
    # The owner is operator in both; the token reaches alpha only.
    owner_roles = {alpha.id: "operator", beta.id: "operator"}
    scoped = member_api(client, owner_roles, token_project=alpha.id)
    key = api_as("admin").post("/api/v1/proxy/keys", json={"name": "k", "project": "beta"})
    assert key.status_code == 201

    container = f"/api/v1/hosts/{theirs_host.id}/containers/abc"
    assert client.get(f"{container}/logs", headers=scoped.headers).status_code == 404
    exec_body = {"argv": ["id"]}
    assert scoped.post(f"{container}/exec", json=exec_body).status_code == 404
    assert scoped.get(f"/api/v1/apps/{theirs_app.id}/logs").status_code == 404
    assert scoped.post(f"/api/v1/apps/{theirs_app.id}/exec", json=exec_body).status_code == 404
    assert scoped.delete(f"/api/v1/proxy/keys/{key.json['id']}").status_code == 404
    assert scoped.get("/api/v1/proxy/keys").json == []
    assert [p["name"] for p in scoped.get("/api/v1/projects").json] == ["alpha"]
    # Nor can it mint itself a wider token.
    wider = scoped.post("/api/v1/tokens", json={"name": "w", "project": "beta"})
    assert wider.status_code == 404
    same = scoped.post("/api/v1/tokens", json={"name": "s"})
    assert same.status_code == 201 and same.json["project_id"] == alpha.id


def test_a_token_role_is_at_most_its_owners(client: Any) -> None:
    alpha = make_project("alpha")
    host = make_host(alpha.id)
    owner = member_api(client, {alpha.id: "operator"})
    too_high = owner.post("/api/v1/tokens", json={"name": "t", "project": "alpha", "role": "admin"})
    assert too_high.status_code == 403
    made = owner.post("/api/v1/tokens", json={"name": "t", "project": "alpha", "role": "viewer"})
    assert made.status_code == 201 and made.json["role"] == "viewer"
    assert _audit("token.create").project_id == alpha.id
    viewer = ApiClient(client, made.json["token"])
    assert viewer.get(f"/api/v1/hosts/{host.id}").status_code == 200
    assert viewer.patch(f"/api/v1/hosts/{host.id}", json={"labels": {}}).status_code == 403
    bad = owner.post("/api/v1/tokens", json={"name": "t", "role": "root"})
    assert bad.status_code == 422 and "role" in bad.json["details"]


def test_a_project_token_of_a_global_admin_is_no_global_admin(
    client: Any, api_as: Callable[[str], ApiClient]
) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    make_host(beta.id)
    admin = api_as("admin")
    scoped = admin.post("/api/v1/tokens", json={"name": "a", "project": "alpha"})
    api = ApiClient(client, scoped.json["token"])
    assert api.get("/api/v1/hosts").json == []
    assert api.get("/api/v1/users").status_code == 403
    assert api.post("/api/v1/projects", json={"name": "gamma"}).status_code == 403
    assert api.get(f"/api/v1/projects/{alpha.id}").json["role"] == "admin"


def test_audit_records_can_be_listed_by_project(
    client: Any, api_as: Callable[[str], ApiClient]
) -> None:
    alpha = make_project("alpha")
    host = make_host(alpha.id)
    api = member_api(client, {alpha.id: "operator"})
    assert api.delete(f"/api/v1/hosts/{host.id}/host-key").status_code == 200
    rows = api_as("admin").get(f"/api/v1/audit?project_id={alpha.id}").json
    assert rows and {row["project_id"] for row in rows} == {alpha.id}


def test_pages_list_only_the_callers_projects_and_answer_404_for_others(client: Any) -> None:
    alpha, beta = make_project("alpha"), make_project("beta")
    mine, theirs = make_host(alpha.id), make_host(beta.id)
    their_app = make_app(theirs)
    member = member_api(client, {alpha.id: "viewer"})
    client.post("/login", data={"username": member.username, "password": PASSWORD})
    hosts_page = client.get("/hosts").get_data(as_text=True)
    assert mine.name in hosts_page and theirs.name not in hosts_page
    apps_page = client.get("/apps").get_data(as_text=True)
    assert theirs.name not in apps_page and their_app.name not in apps_page
    assert client.get(f"/hosts/{mine.id}").status_code == 200
    assert client.get(f"/hosts/{theirs.id}").status_code == 404
    assert client.get(f"/apps/{their_app.id}").status_code == 404


def test_metrics_show_each_projects_quota_use(api_as: Callable[[str], ApiClient]) -> None:
    alpha = make_project("alpha", gpu_limit=4)
    host = make_host(alpha.id, gpus=2)
    make_app(host, gpus=[0, 1])
    make_app(host)
    text = api_as("admin").get("/metrics").get_data(as_text=True)
    assert 'spectr_project_gpus{project="alpha"} 2.0' in text
    assert 'spectr_project_gpu_limit{project="alpha"} 4.0' in text
    assert 'spectr_project_applications{project="alpha"} 2.0' in text
    assert 'spectr_project_application_limit{project="alpha"}' not in text


def test_metrics_show_each_projects_gpu_models_memory_and_gateway_quotas(
    api_as: Callable[[str], ApiClient],
) -> None:
    alpha = make_project("alpha", gpu_model_limits={"NVIDIA A10": 3, H100: 1},
                         gpu_memory_limit_mib=100000, gateway_rpm_limit=60,
                         gateway_tokens_per_day_limit=5000)  # fmt: skip
    make_app(make_host(alpha.id, gpus=2), gpus=[0, 1])
    db.session.add(UsageRecord(request_id="r1", at=utcnow(), key_id="k", user="u", model="m",
                               endpoint="/v1/embeddings", replica="r", status=200,
                               total_tokens=77, project_id=alpha.id))  # fmt: skip
    db.session.commit()
    text = api_as("admin").get("/metrics").get_data(as_text=True)
    for line in (
        'spectr_project_model_gpus{model="NVIDIA A10",project="alpha"} 2.0',
        'spectr_project_model_gpu_limit{model="NVIDIA A10",project="alpha"} 3.0',
        f'spectr_project_model_gpus{{model="{H100}",project="alpha"}} 0.0',
        f'spectr_project_model_gpu_limit{{model="{H100}",project="alpha"}} 1.0',
        'spectr_project_gpu_memory_mib{project="alpha"} 46056.0',
        'spectr_project_gpu_memory_limit_mib{project="alpha"} 100000.0',
        'spectr_project_gateway_tokens_day{project="alpha"} 77.0',
        'spectr_project_gateway_tokens_day_limit{project="alpha"} 5000.0',
        'spectr_project_gateway_tokens_month{project="alpha"} 77.0',
        'spectr_project_gateway_rpm_limit{project="alpha"} 60.0',
    ):
        assert line in text
    assert 'spectr_project_gateway_tokens_month_limit{project="alpha"}' not in text


def test_the_dashboard_shows_the_callers_projects_and_their_quota_use(client: Any) -> None:
    alpha, beta = make_project("alpha", gpu_limit=2), make_project("beta")
    make_app(make_host(alpha.id, gpus=1), gpus=[0])
    member = member_api(client, {alpha.id: "operator"})
    client.post("/login", data={"username": member.username, "password": PASSWORD})
    page = client.get("/").get_data(as_text=True)
    row = page.split('data-project="alpha"', 1)[1].split("</tr>", 1)[0]
    assert "operator" in row and "1 / 2" in row and "1 / no limit" in row
    assert '<td data-quota="gpu_memory_mib">23,028 MiB / no limit</td>' in row
    assert f'data-project="{beta.name}"' not in page
