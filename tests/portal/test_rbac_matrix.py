"""The RBAC matrix, generated from the OpenAPI document.

Every operation that names a role answers 401 to an anonymous caller. Every operation on a
project's resources (hosts, their containers and objects, applications, gateway keys and
routes, projects and their members) is called by a viewer, an operator and an admin of a
project, on a resource of their own project and on one of another project:
- a role below the endpoint's: 403 (the same answer whatever the resource: nothing leaks);
- another project's resource: 404, word for word what a missing one answers;
- their own project's resource: past the role checks (never 401, 403, nor the resource's 404).
A global admin, member of nothing, passes everywhere.

Operations are queued, not run (SPECTR_QUEUE_IMMEDIATE off), and the hosts have no agent:
nothing here reaches an engine or the network.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from portal.admin import service as admin_service
from portal.app import create_app
from portal.core.security import ROLE_RANK
from portal.extensions import db
from portal.projects.models import ProjectMember
from portal.proxy.models import GatewayKey, ProxyRoute
from tests.portal.conftest import PASSWORD, ApiClient, _test_config
from tests.portal.projects_support import (
    make_app,
    make_host,
    make_project,
    member_api,
    quick_user,
)

ROLES = ("viewer", "operator", "admin")
METHODS = ("get", "post", "put", "patch", "delete")
# Bodies that pass validation, so that what answers is the access check, not a 422.
BODIES = {
    ("post", "/api/v1/apps/{app_id}/exec"): {"argv": ["id"]},
    ("post", "/api/v1/hosts/{host_id}/containers/{container_id}/exec"): {"argv": ["id"]},
    ("post", "/api/v1/apps/{app_id}/revisions"): {"container": {"image": "registry.local/a:1"}},
    ("post", "/api/v1/apps/{app_id}/duplicate"): {"name": "copy"},
    ("post", "/api/v1/apps/{app_id}/rollback"): {"revision": 1},
    ("post", "/api/v1/hosts/{host_id}/container-actions"): {"action": "stop", "ids": ["abc"]},
    ("post", "/api/v1/hosts/{host_id}/prune/{kind}"): {"confirm": "the-host"},
    ("post", "/api/v1/projects/{project_id}/members"): {"username": "{username}",
                                                         "role": "viewer"},
    ("patch", "/api/v1/projects/{project_id}/members/{user_id}"): {"role": "operator"},
    ("patch", "/api/v1/proxy/routes/{route_id}"): {"retries": 2},
    ("post", "/api/v1/hosts/{host_id}/shares"): {"project": "nowhere"},
    ("patch", "/api/v1/hosts/{host_id}/shares/{project}"): {"gpu_limit": 1},
    ("post", "/api/v1/hosts/{host_id}/move"): {"project": "nowhere"},
    ("post", "/api/v1/apps/{app_id}/move"): {"project": "nowhere"},
    ("post", "/api/v1/proxy/keys/{key_id}/move"): {"project": "nowhere"},
    ("post", "/api/v1/proxy/routes/{route_id}/move"): {"project": "nowhere"},
}  # fmt: skip
QUERIES = {("get", "/api/v1/apps/{app_id}/diff"): "?from=1&to=1"}


@pytest.fixture
def matrix_app(tmp_path: Path, sqlite_template: Path) -> Iterator[Flask]:
    shutil.copy(sqlite_template, tmp_path / "spectr.db")
    config = _test_config(tmp_path, f"sqlite:///{tmp_path / 'spectr.db'}")
    application = create_app({**config, "SPECTR_QUEUE_IMMEDIATE": False})
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def _operations(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.test_client().get("/api/v1/openapi.json").json
    found = []
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                parameters = shared + item[method].get("parameters", [])
                found.append((method, path, {p["name"]: p for p in parameters}))
    return found


def _view(app: Flask, method: str, url: str) -> Any:
    adapter = app.url_map.bind("localhost")
    endpoint, _ = adapter.match(url.split("?")[0], method=method.upper())
    view = app.view_functions[endpoint]
    return getattr(view.view_class, method)


def _placeholder(parameter: dict[str, Any]) -> str:
    schema = parameter.get("schema", {})
    if schema.get("enum"):
        return str(schema["enum"][0])
    return "1" if schema.get("type") == "integer" else "abc"


def _url(path: str, parameters: dict[str, Any], values: dict[str, Any]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        return str(values.get(name) or _placeholder(parameters[name]))

    return re.sub(r"{(\w+)}", value, path)


def test_every_operation_that_names_a_role_refuses_anonymous_callers(matrix_app: Flask) -> None:
    client = matrix_app.test_client()
    checked = 0
    for method, path, parameters in _operations(matrix_app):
        url = _url(path, parameters, {})
        if not hasattr(_view(matrix_app, method, url), "required_role"):
            continue  # public: sign-in, health, the OpenAPI document
        answer = client.open(url, method=method.upper(), json={})
        assert answer.status_code == 401, (method, path, answer.status_code)
        checked += 1
    assert checked > 100


def _resources(project_id: int, owner_id: int) -> dict[str, Any]:
    """A host, an application, a route, a gateway key and a spare member in the project."""
    host = make_host(project_id)
    app = make_app(host)
    route = ProxyRoute(name=f"r-{host.name}", upstreams=["http://127.0.0.1:9"],
                       project_id=project_id)  # fmt: skip
    key = GatewayKey(public_id=f"key_{host.name}", name="k", user_id=owner_id, sha256=host.name,
                     prefix="sk-", project_id=project_id)  # fmt: skip
    spare = quick_user()
    db.session.add_all([route, key])
    db.session.add(ProjectMember(project_id=project_id, user_id=spare.id, role="viewer"))
    db.session.commit()
    return {
        "host_id": host.id,
        "app_id": app.id,
        "route_id": route.id,
        "key_id": key.id,
        "project_id": project_id,
        "user_id": spare.id,
    }


def _project_operations(app: Flask) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, parameters, role needed) of every operation on a project's resources."""
    rows = []
    for method, path, parameters in _operations(app):
        view = _view(app, method, _url(path, parameters, {}))
        in_path = {name for name, p in parameters.items() if p["in"] == "path"}
        if getattr(view, "project_scoped", False) and in_path & {
            "host_id", "app_id", "route_id", "key_id"
        }:  # fmt: skip
            rows.append((method, path, parameters, view.required_role))
        elif path.startswith("/api/v1/projects/{project_id}"):
            rows.append((method, path, parameters, _project_role_needed(method, path)))
    return rows


def _project_role_needed(method: str, path: str) -> str:
    if method == "get":
        return "viewer"
    if method == "delete" and path == "/api/v1/projects/{project_id}":
        return "global admin"
    return "admin"


def _call(api: ApiClient, method: str, path: str, parameters: dict, values: dict) -> Any:
    body = BODIES.get((method, path), {})
    if "username" in body:
        body = {**body, "username": quick_user().username}
    url = _url(path, parameters, values) + QUERIES.get((method, path), "")
    return api.request(method.upper(), url, json=body)


def _is_resource_404(answer: Any) -> bool:
    if answer.status_code != 404 or not answer.is_json:
        return False
    return bool(re.match(r"No [\w ]+ with id \d+\.$", answer.json.get("message", "")))


def test_project_roles_matrix(matrix_app: Flask) -> None:
    client = matrix_app.test_client()
    operations = _project_operations(matrix_app)
    assert len(operations) > 40
    callers = {}
    for role in ROLES:
        own, other = make_project(f"own-{role}"), make_project(f"other-{role}")
        callers[role] = (member_api(client, {own.id: role}), own, other)
    failures = []
    for method, path, parameters, needed in operations:
        for role, (caller, own, other) in callers.items():
            for side, project in (("own", own), ("other", other)):
                values = _resources(project.id, caller.user_id)
                answer = _call(caller, method, path, parameters, values)
                if not _matches(_expected(role, needed, side), answer):
                    failures.append((method, path, role, side, answer.status_code, _said(answer)))
    assert not failures, "\n".join(map(str, failures))


def _said(answer: Any) -> str:
    body = answer.json if answer.is_json else None
    return body.get("message", "") if isinstance(body, dict) else str(body)[:80]


def _expected(role: str, needed: str, side: str) -> str:
    below = needed == "global admin" or ROLE_RANK[role] < ROLE_RANK[needed]
    if side == "other":
        # Refused for the role before the resource is looked at, or not found: either way the
        # answer is the same whether the resource exists or not.
        return "403 or 404" if below else "404"
    return "403" if below else "allowed"


def _matches(expected: str, answer: Any) -> bool:
    if expected == "403 or 404":
        return answer.status_code == 403 or _is_resource_404(answer)
    if expected == "403":
        return answer.status_code == 403
    if expected == "404":
        return _is_resource_404(answer)
    return answer.status_code not in (401, 403) and not _is_resource_404(answer)


def test_a_global_admin_passes_on_every_projects_resources(matrix_app: Flask) -> None:
    user = admin_service.create_user("global-admin", PASSWORD, "admin")
    admin = ApiClient(matrix_app.test_client(), admin_service.create_token(user, "t", 1)[1])
    failures = []
    for number, (method, path, parameters, _) in enumerate(_project_operations(matrix_app)):
        project = make_project(f"p-{number}")
        values = _resources(project.id, user.id)
        answer = _call(admin, method, path, parameters, values)
        if answer.status_code in (401, 403) or _is_resource_404(answer):
            failures.append((method, path, answer.status_code, _said(answer)))
    assert not failures, "\n".join(map(str, failures))
