"""Helpers of the projects tests: projects, members confined to them, host and app rows."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask, g
from flask.testing import FlaskClient

from portal.admin import service as admin_service
from portal.admin.models import User
from portal.apps.models import Application, AppRevision
from portal.core.security import hash_password
from portal.extensions import db
from portal.hosts.models import Host, HostGpu
from portal.projects.models import Project, ProjectMember
from tests.portal.conftest import PASSWORD, ApiClient


def make_project(name: str, **quotas: Any) -> Project:
    project = Project(name=name, description="", **quotas)
    db.session.add(project)
    db.session.commit()
    return project


_HASH = hash_password(PASSWORD)  # once: argon2 on every user would make the matrix slow


def quick_user(role: str = "viewer") -> User:
    """A user in no project, with the tests' password (hashed once for all of them)."""
    user = User(username=f"u-{uuid.uuid4().hex[:8]}", password_hash=_HASH, role=role)
    db.session.add(user)
    db.session.commit()
    return user


def member_api(
    client: FlaskClient,
    roles: dict[int, str],
    global_role: str = "viewer",
    token_project: int | None = None,
    token_role: str | None = None,
) -> ApiClient:
    """An API client of a new user with these project roles only (not even in `default`)."""
    user = quick_user(global_role)
    for project_id, role in roles.items():
        db.session.add(ProjectMember(project_id=project_id, user_id=user.id, role=role))
    db.session.commit()
    _, plaintext = admin_service.create_token(user, "t", 1, token_project, token_role)
    api = ApiClient(client, plaintext)
    api.user_id = user.id  # type: ignore[attr-defined]
    api.username = user.username  # type: ignore[attr-defined]
    return api


def make_host(project_id: int, gpus: int = 0, status: str = "new", **fields: Any) -> Host:
    """A host row in a project; SSH to 127.0.0.1:1 fails at once, and it has no agent."""
    host = Host(
        name=f"h-{uuid.uuid4().hex[:8]}",
        address="127.0.0.1",
        ssh_port=1,
        auth_method="password",
        ssh_password="not-used",
        status=status,
        project_id=project_id,
        **fields,
    )
    host.gpus = [
        HostGpu(index=i, model="NVIDIA A10", memory_total_mib=23028, memory_used_mib=0)
        for i in range(gpus)
    ]
    db.session.add(host)
    db.session.commit()
    return host


def make_app(host: Host, gpus: list[int] | None = None) -> Application:
    app = Application(
        name=f"a-{uuid.uuid4().hex[:8]}",
        host_id=host.id,
        project_id=host.project_id,
        kind="container",
        status="pending",
        latest_revision=1,
    )
    app.revisions.append(AppRevision(number=1, spec={"image": "x:1"}, gpu_indexes=gpus or []))
    db.session.add(app)
    db.session.commit()
    return app


def signed_in(app: Flask, api: ApiClient) -> tuple[FlaskClient, str]:
    """A browser-like client signed in as `api`'s user, and its CSRF token for page forms."""
    browser = app.test_client()
    answer = browser.post("/login", data={"username": api.username, "password": PASSWORD})
    assert answer.status_code == 302
    # The test's app context (and its `g`) outlives each request: flask-wtf would hand this
    # session the token it keeps in `g` for the previous client's session.
    g.pop("csrf_token", None)
    page = browser.get("/operations").get_data(as_text=True)
    return browser, re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
