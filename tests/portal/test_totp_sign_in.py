"""TOTP for local users: enrolment through the API, the code step of the login page, turning it
off; real HTTP through the test client, codes made with pyotp as an authenticator app would."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.admin import service
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.portal.conftest import PASSWORD, ApiClient


def _enrolled(app: Flask, user: Any) -> pyotp.TOTP:
    _, token = service.create_token(user, "t", 1)
    api = ApiClient(app.test_client(), token)
    link = api.post("/api/v1/me/totp").get_json()["otpauth_url"]
    app_code = pyotp.TOTP(parse_qs(urlsplit(link).query)["secret"][0])
    assert api.post("/api/v1/me/totp/confirm", json={"code": "000000"}).status_code == 403
    assert api.post("/api/v1/me/totp/confirm", json={"code": app_code.now()}).status_code == 204
    assert api.get("/api/v1/me").get_json()["totp_enabled"] is True
    return app_code


def _code_step(browser: FlaskClient, code: str) -> Any:
    page = browser.get("/login/code").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    return browser.post("/login/code", data={"code": code, "csrf_token": token})


def _password_step(browser: FlaskClient, user: Any) -> Any:
    return browser.post("/login", data={"username": user.username, "password": PASSWORD})


def test_sign_in_asks_for_the_code_after_the_password(
    app: Flask, create_user: Callable[..., Any]
) -> None:
    user = create_user("operator")
    app_code = _enrolled(app, user)
    browser = app.test_client()
    answer = _password_step(browser, user)
    assert answer.headers["Location"] == "/login/code"
    assert browser.get("/api/v1/me").status_code == 401  # not signed in yet

    wrong = _code_step(browser, "123456")
    assert wrong.status_code == 401
    assert "wrong or expired" in wrong.get_data(as_text=True)
    event = db.session.scalars(
        select(AuditEvent).filter_by(action="session.login").order_by(AuditEvent.id.desc())
    ).first()
    assert (event.outcome, event.details["method"]) == ("failed (totp wrong)", "totp")

    assert _code_step(browser, app_code.now()).status_code == 302
    assert browser.get("/api/v1/me").get_json()["username"] == user.username


def test_the_code_step_alone_signs_nobody_in(app: Flask) -> None:
    answer = app.test_client().post("/login/code", data={"code": "123456"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"


def test_turning_it_off_needs_a_code_or_an_admin(
    app: Flask, create_user: Callable[..., Any]
) -> None:
    user = create_user("viewer")
    app_code = _enrolled(app, user)
    _, token = service.create_token(user, "t2", 1)
    api = ApiClient(app.test_client(), token)
    assert api.delete("/api/v1/me/totp", json={"code": "000000"}).status_code == 403
    assert api.delete("/api/v1/me/totp", json={"code": app_code.now()}).status_code == 204
    _enrolled(app, user)
    _, admin_token = service.create_token(create_user("admin"), "a", 1)
    admin = ApiClient(app.test_client(), admin_token)
    assert admin.delete(f"/api/v1/users/{user.id}/totp").status_code == 204
    assert _password_step(app.test_client(), user).headers["Location"] == "/"


def test_wrong_codes_lock_the_sign_in_even_with_the_right_password(
    app: Flask, create_user: Callable[..., Any]
) -> None:
    from portal.admin.sessions import FREE_FAILURES_PER_USER

    user = create_user("viewer")
    app_code = _enrolled(app, user)
    browser = app.test_client()
    for _ in range(FREE_FAILURES_PER_USER + 1):  # the free ones, then one that locks
        _password_step(browser, user)
        assert _code_step(browser, "000000").status_code == 401
    _password_step(browser, user)
    locked = _code_step(browser, app_code.now())
    assert locked.status_code == 429
    assert browser.get("/api/v1/me").status_code == 401
