"""Edit an application (a new revision from a form prefilled from the latest one, secrets kept
unless changed), duplicate one to another name or host, and the compose editor's server-side
check whose problems name their lines. Real portal on SQLite; nothing is deployed here (the
browser test deploys an edit on the real engine)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from portal.apps.models import Application
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.apps.helpers import log_in

COMPOSE = """# the team's stack
services:
  web:
    image: registry.local:5000/team/web:1.0  # pinned
    ports:
      - "18080:80"
"""


def _create(api: Any, host_id: int, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "web",
        "host_id": host_id,
        "deploy": False,
        "container": {
            "image": "registry.local:5000/team/web:1.0",
            "command": ["sh", "-c", "echo 'hi there'; sleep 5"],
            "env": {"MODE": "prod"},
            "ports": [{"host_port": 18080, "container_port": 80}],
            "volumes": ["web-data:/data"],
            "labels": {"team": "ml"},
            "restart_policy": "on-failure",
            "memory": "256m",
        },
        "secret_env": {"API_KEY": "s3cr3t-value", "DB_PASSWORD": "hunter2"},
        **extra,
    }
    answer = api.post("/api/v1/apps", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json


def _secrets(app_id: int, number: int) -> dict[str, str]:
    revision = next(r for r in db.session.get(Application, app_id).revisions if r.number == number)
    return json.loads(revision.secret_env or "{}")


def test_the_edit_form_is_prefilled_and_saves_a_new_revision_keeping_secrets(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    local_host: Any,
) -> None:
    created = _create(api_as("operator"), local_host.id)
    csrf = log_in(client, create_user, "operator")

    form = client.get(f"/apps/{created['id']}/edit").get_data(as_text=True)
    assert 'value="registry.local:5000/team/web:1.0"' in form
    assert "sh -c &#39;echo &#39;&#34;&#39;&#34;&#39;hi there" in form or "hi there" in form
    assert "MODE=prod" in form and "team=ml" in form and "web-data:/data" in form
    assert 'value="18080:80"' in form and "<option selected>on-failure</option>" in form
    assert "API_KEY" in form and "DB_PASSWORD" in form
    assert "s3cr3t-value" not in form and "hunter2" not in form  # secrets by name only

    saved = client.post(f"/apps/{created['id']}/edit", data={
        "csrf_token": csrf, "image": "registry.local:5000/team/web:1.1",
        "command": "sh -c 'echo \"hi there\"; sleep 5'", "env": "MODE=prod\nLOG=debug",
        "ports": "18080:80, 0.0.0.0:19090:90/udp", "volumes": "web-data:/data\n/srv/conf:/etc/web:ro",
        "restart_policy": "always", "labels": "team=ml", "gpus": "",
        "secret__API_KEY": "", "secret__DB_PASSWORD": "new-password", "secret_env": "TOKEN=abc",
        "note": "tag 1.1",
    })  # fmt: skip
    assert saved.status_code == 302
    assert "from=1" in saved.location and "to=2" in saved.location

    shown = api_as("viewer").get(f"/api/v1/apps/{created['id']}").json
    assert shown["latest_revision"] == 2 and shown["deployed_revision"] is None
    spec = shown["revisions"][1]["spec"]
    assert spec["image"].endswith(":1.1") and spec["command"] == [
        "sh",
        "-c",
        'echo "hi there"; sleep 5',
    ]
    assert spec["env"] == {"MODE": "prod", "LOG": "debug"} and spec["restart_policy"] == "always"
    assert spec["ports"][1] == {"host_ip": "0.0.0.0", "host_port": 19090, "container_port": 90,
                                "protocol": "udp"}  # fmt: skip
    assert spec["memory"] == "256m"  # not on the form: carried over from revision 1
    assert _secrets(created["id"], 2) == {
        "API_KEY": "s3cr3t-value", "DB_PASSWORD": "new-password", "TOKEN": "abc"}  # fmt: skip

    page = client.get(saved.location).get_data(as_text=True)
    assert 'id="revision-diff"' in page and "+  LOG: debug" in page
    assert "Revision 2 saved. It is not deployed yet" in page
    assert "s3cr3t-value" not in page and "new-password" not in page
    audit = db.session.query(AuditEvent).filter_by(action="app.revise").one()
    assert audit.target == "app:web" and audit.details["revision"] == 2


def test_a_secret_can_be_removed_and_bad_fields_are_named_with_the_form_kept(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    local_host: Any,
) -> None:
    created = _create(api_as("operator"), local_host.id)
    csrf = log_in(client, create_user, "operator")
    base = {"csrf_token": csrf, "image": "registry.local:5000/team/web:1.0", "command": "",
            "env": "", "ports": "", "volumes": "", "restart_policy": "no", "labels": ""}  # fmt: skip

    refused = client.post(f"/apps/{created['id']}/edit", data={**base, "ports": "80:http"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "container_port" in page and 'value="80:http"' in page
    refused = client.post(f"/apps/{created['id']}/edit", data={**base, "gpus": "zero"})
    assert refused.status_code == 422 and "GPU indexes" in refused.get_data(as_text=True)
    assert db.session.get(Application, created["id"]).latest_revision == 1

    saved = client.post(
        f"/apps/{created['id']}/edit", data={**base, "remove_secret": "DB_PASSWORD"}
    )
    assert saved.status_code == 302
    assert _secrets(created["id"], 2) == {"API_KEY": "s3cr3t-value"}


def test_only_operators_edit_and_duplicate(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    local_host: Any,
) -> None:
    created = _create(api_as("operator"), local_host.id)
    viewer = api_as("viewer")
    assert (
        viewer.post(f"/api/v1/apps/{created['id']}/duplicate", json={"name": "x"}).status_code
        == 403
    )
    assert viewer.post("/api/v1/apps/compose/check", json={"compose": COMPOSE}).status_code == 403
    csrf = log_in(client, create_user, "viewer")
    assert client.get(f"/apps/{created['id']}/edit").status_code == 403
    assert client.post(f"/apps/{created['id']}/edit", data={"csrf_token": csrf}).status_code == 403
    page = client.get(f"/apps/{created['id']}").get_data(as_text=True)
    assert 'id="edit-app-link"' not in page and 'id="duplicate"' not in page


def test_duplicate_to_another_host_copies_the_latest_revision_and_its_secrets(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    local_host: Any,
    make_host: Callable[..., Any],
) -> None:
    other = make_host("gpu-box", [("NVIDIA A10", 23028, 0)])  # stand-in GPU facts
    operator = api_as("operator")
    created = _create(operator, local_host.id)

    copied = operator.post(f"/api/v1/apps/{created['id']}/duplicate",
                           json={"name": "web-staging", "host_id": other.id})  # fmt: skip
    assert copied.status_code == 201, copied.json
    assert copied.json["host_id"] == other.id and copied.json["latest_revision"] == 1
    assert copied.json["revisions"][0]["spec"] == created["revisions"][0]["spec"]
    assert copied.json["revisions"][0]["note"] == "duplicate of web revision 1"
    assert copied.json["last_operation_id"] is None  # deploy defaults to false for a copy
    assert _secrets(copied.json["id"], 1) == _secrets(created["id"], 1)
    assert "s3cr3t-value" not in json.dumps(copied.json)
    audit = db.session.query(AuditEvent).filter_by(action="app.duplicate").one()
    assert audit.target == "app:web-staging" and audit.details["source"] == "web"

    same_name = operator.post(f"/api/v1/apps/{created['id']}/duplicate",
                              json={"name": "web"})  # fmt: skip
    assert same_name.status_code == 409 and "already exists" in same_name.json["message"]
    bad = operator.post(f"/api/v1/apps/{created['id']}/duplicate", json={"name": "Web Copy"})
    assert bad.status_code == 422 and "name" in bad.json["details"]

    csrf = log_in(client, create_user, "operator")
    page = client.get(f"/apps/{created['id']}").get_data(as_text=True)
    assert 'id="duplicate"' in page and "gpu-box" in page
    answer = client.post(f"/apps/{created['id']}/duplicate",
                         data={"csrf_token": csrf, "name": "web-two", "host_id": local_host.id})  # fmt: skip
    assert answer.status_code == 302
    shown = client.get(answer.location).get_data(as_text=True)
    assert "Application web-two created from web" in shown


def test_compose_check_points_each_problem_at_its_line(
    app: Flask, api_as: Callable[[str], Any]
) -> None:
    operator = api_as("operator")
    good = operator.post("/api/v1/apps/compose/check", json={"compose": COMPOSE}).json
    assert good == {"valid": True, "problems": [],
                    "services": [{"name": "web", "image": "registry.local:5000/team/web:1.0"}]}  # fmt: skip

    broken_yaml = "services:\n  web:\n    image: nginx:1\n   ports: [\n"
    answer = operator.post("/api/v1/apps/compose/check", json={"compose": broken_yaml}).json
    assert not answer["valid"] and answer["problems"][0]["line"] == 4
    assert answer["problems"][0]["message"].startswith("not valid YAML")

    wrong = (
        "services:\n"
        "  web:\n"
        "    image: nginx:1\n"
        "    imag: typo\n"
        "    ports: ['8080:80']\n"
        "  api:\n"
        "    image: nginx:1\n"
        "    ports:\n"
        "      - '8080:81'\n"
        "  worker:\n"
        "    command: run\n"
    )
    problems = operator.post("/api/v1/apps/compose/check", json={"compose": wrong}).json["problems"]
    by_path = {p["path"]: (p["line"], p["message"]) for p in problems}
    assert by_path["services/web/imag"] == (4, "unknown key 'imag'")
    # the schema's problems come first; Spectr's own (image, ports) once the schema is met
    fixed = wrong.replace("    imag: typo\n", "")
    problems = operator.post("/api/v1/apps/compose/check", json={"compose": fixed}).json["problems"]
    by_path = {p["path"]: (p["line"], p["message"]) for p in problems}
    assert by_path["services/api/ports/0"] == (
        8,
        "host port 8080 is already published by service web",
    )
    assert (
        by_path["services/worker"][0] == 9 and "an image is needed" in by_path["services/worker"][1]
    )
    missing = operator.post("/api/v1/apps/compose/check", json={})
    assert missing.status_code == 422 and "compose" in missing.json["details"]


def test_the_compose_editor_keeps_comments_and_refuses_a_broken_file_naming_the_line(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    local_host: Any,
) -> None:
    created = api_as("operator").post("/api/v1/apps", json={
        "name": "stack", "host_id": local_host.id, "kind": "compose", "compose": COMPOSE,
        "deploy": False}).json  # fmt: skip
    csrf = log_in(client, create_user, "operator")
    editor = client.get(f"/apps/{created['id']}/edit").get_data(as_text=True)
    assert "# the team&#39;s stack" in editor and "# pinned" in editor  # the text as written
    assert "data-compose-editor" in editor and "Valid: 1 service" in editor

    broken = COMPOSE.replace('      - "18080:80"\n', '      - "18080:80"\n    restart: [\n')
    refused = client.post(f"/apps/{created['id']}/edit",
                          data={"csrf_token": csrf, "compose": broken})  # fmt: skip
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'data-goto-line="' in page
    assert "not valid YAML" in page and "restart: [" in page  # what was typed stays
    fragment = client.post("/apps/compose-check", data={"csrf_token": csrf, "compose": broken})
    assert re.search(r'data-goto-line="(\d+)"', fragment.get_data(as_text=True))

    changed = COMPOSE.replace("web:1.0", "web:1.1")
    saved = client.post(f"/apps/{created['id']}/edit",
                        data={"csrf_token": csrf, "compose": changed, "note": "1.1"})  # fmt: skip
    assert saved.status_code == 302
    diff = client.get(saved.location).get_data(as_text=True)
    assert "registry.local:5000/team/web:1.1" in diff and 'id="revision-diff"' in diff
    again = client.get(f"/apps/{created['id']}/edit").get_data(as_text=True)
    assert "web:1.1  # pinned" in again


def test_compose_config_reports_what_only_compose_knows_where_compose_is_installed(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    local_host: Any,
    compose_plugin: str,
) -> None:
    operator = api_as("operator")
    dangling = "services:\n  web:\n    image: nginx:1\n    depends_on: [db]\n"
    answer = operator.post("/api/v1/apps/compose/check", json={"compose": dangling}).json
    assert not answer["valid"] and answer["problems"][0]["line"] == 2
    assert 'depends on undefined service "db"' in answer["problems"][0]["message"]
    required = "services:\n  web:\n    image: nginx:1\n    environment:\n      A: ${TAG:?set TAG}\n"
    problem = operator.post("/api/v1/apps/compose/check", json={"compose": required}).json[
        "problems"
    ][0]
    # the portal's own environment is not interpolated: TAG is missing even if it were set
    assert problem["line"] == 4 and "required variable TAG is missing" in problem["message"]

    created = operator.post("/api/v1/apps", json={
        "name": "stack", "host_id": local_host.id, "kind": "compose", "compose": COMPOSE,
        "deploy": False}).json  # fmt: skip
    csrf = log_in(client, create_user, "operator")
    refused = client.post(
        f"/apps/{created['id']}/edit", data={"csrf_token": csrf, "compose": dangling}
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "line 2: docker compose config" in page
    assert db.session.get(Application, created["id"]).latest_revision == 1
