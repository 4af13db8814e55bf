"""Deleting a host that has applications, SQLite ids and foreign keys, the login redirect,
and the headers of pages: real HTTP through the test client, on SQLite and Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from portal.apps.models import Application
from portal.extensions import db
from portal.hosts.models import Host
from tests.portal.conftest import PASSWORD, ApiClient


@pytest.fixture
def db_api(any_db_app: Flask) -> ApiClient:
    from portal.admin import service

    user = service.create_user(f"admin-{uuid.uuid4().hex[:6]}", PASSWORD, "admin")
    _, token = service.create_token(user, "test", 1)
    return ApiClient(any_db_app.test_client(), token)


def _host_with_app(name: str) -> Host:
    host = Host(name=name, address="192.0.2.20", status="ready")
    db.session.add(host)
    db.session.flush()
    db.session.add(Application(name="svc", host_id=host.id, kind="container"))
    db.session.commit()
    return host


def test_deleting_a_host_with_applications_is_a_409_naming_them(db_api: ApiClient) -> None:
    host = _host_with_app("busy")
    answer = db_api.delete(f"/api/v1/hosts/{host.id}")
    assert answer.status_code == 409, answer.json
    assert answer.json["details"] == {"applications": ["svc"]}
    assert "svc" in answer.json["message"]
    assert db_api.get(f"/api/v1/hosts/{host.id}").status_code == 200
    assert db_api.get("/api/v1/apps").json[0]["host_id"] == host.id


def test_the_database_refuses_applications_without_their_host(any_db_app: Flask) -> None:
    from sqlalchemy.exc import IntegrityError

    host = _host_with_app("fk")
    with pytest.raises(IntegrityError):
        db.session.execute(text("DELETE FROM hosts WHERE id = :id"), {"id": host.id})
    db.session.rollback()


def test_a_deleted_hosts_id_is_never_given_to_the_next_host(db_api: ApiClient) -> None:
    body = {"address": "192.0.2.30", "ssh_password": "pw"}
    first = db_api.post("/api/v1/hosts", json={"name": "one", **body}).json["id"]
    assert db_api.delete(f"/api/v1/hosts/{first}").status_code in (200, 204)
    second = db_api.post("/api/v1/hosts", json={"name": "two", **body}).json["id"]
    assert second > first


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/%0a/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "%20//evil.example",
        "/%0d%0a/evil.example/x",
    ],
)
def test_login_never_redirects_to_another_site(client: Any, create_user: Any, target: str) -> None:
    user = create_user("viewer")
    answer = client.post(
        f"/login?next={target}", data={"username": user.username, "password": PASSWORD}
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"


def test_login_follows_a_path_on_this_site(client: Any, create_user: Any) -> None:
    user = create_user("viewer")
    answer = client.post(
        "/login?next=/hosts%3Fstatus%3Dready",
        data={"username": user.username, "password": PASSWORD},
    )
    assert answer.headers["Location"] == "/hosts?status=ready"


def test_pages_refuse_frames_and_the_session_cookie_is_same_site(
    client: Any, create_user: Any
) -> None:
    user = create_user("viewer")
    answer = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert "SameSite=Lax" in answer.headers["Set-Cookie"]
    assert "HttpOnly" in answer.headers["Set-Cookie"]
    page = client.get("/login")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
