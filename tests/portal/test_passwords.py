"""Passwords over real HTTP (the test client): changing your own, an admin setting someone's,
the policy, the throttle on wrong current passwords, sessions ended and the audit trail."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.admin import service
from portal.admin.models import User
from portal.admin.sessions import FREE_FAILURES_PER_USER
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.portal.conftest import PASSWORD, ApiClient

NEW = "a brand new passphrase"


def _user(role: str = "viewer") -> User:
    return service.create_user(f"u-{uuid.uuid4().hex[:8]}", PASSWORD, role)


def _browser(app: Flask, user: User, password: str = PASSWORD) -> FlaskClient:
    """A client signed in as `user` through the login page, with its CSRF token at hand."""
    browser = app.test_client()
    answer = browser.post("/login", data={"username": user.username, "password": password})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = browser.get("/").get_data(as_text=True)
    browser.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]  # type: ignore[attr-defined]
    return browser


def _signed_in(browser: FlaskClient) -> bool:
    return browser.get("/api/v1/me").status_code == 200


def _change(browser: FlaskClient, current: str, new: str, **headers: str) -> Any:
    return browser.post(
        "/api/v1/me/password",
        json={"current_password": current, "new_password": new},
        headers={"X-CSRFToken": browser.csrf, **headers},  # type: ignore[attr-defined]
    )


def _audit(action: str, username: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            db.select(AuditEvent)
            .filter_by(action=action, target=f"user:{username}")
            .order_by(AuditEvent.id)
        )
    )


def test_changing_your_password_keeps_this_session_and_ends_the_others(
    any_db_app: Flask,
) -> None:
    user = _user()
    laptop, phone, tablet = (_browser(any_db_app, user) for _ in range(3))

    answer = _change(laptop, PASSWORD, NEW)

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"sessions_ended": 2}
    assert _signed_in(laptop)
    assert not _signed_in(phone) and not _signed_in(tablet)
    assert service.authenticate_password(user.username, PASSWORD) is None
    assert service.authenticate_password(user.username, NEW) is not None
    (event,) = _audit("user.password.change", user.username)
    assert event.actor == user.username and event.outcome == "success"
    assert event.details == {"sessions_ended": 2}
    assert PASSWORD not in str(event.details) and NEW not in str(event.details)


def test_a_wrong_current_password_is_refused_by_name_and_audited(app: Flask) -> None:
    user = _user()
    browser = _browser(app, user)

    answer = _change(browser, "not my password", NEW)

    assert answer.status_code == 403
    body = answer.get_json()
    assert body["message"] == "The current password is wrong."
    assert list(body["details"]) == ["current_password"]
    assert service.authenticate_password(user.username, PASSWORD) is not None
    (event,) = _audit("user.password.change", user.username)
    assert event.outcome.startswith("failed")
    assert _signed_in(browser)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("short", "The password must have 10 to 512 characters."),
        ("x" * 513, "The password must have 10 to 512 characters."),
        (PASSWORD, "The new password is the same as the current one."),
    ],
)
def test_the_new_password_must_follow_the_policy(app: Flask, new: str, message: str) -> None:
    browser = _browser(app, _user())
    answer = _change(browser, PASSWORD, new)
    assert answer.status_code == 422
    assert message in str(answer.get_json()["details"]["new_password"])


def test_the_password_may_not_be_the_user_name(app: Flask) -> None:
    user = service.create_user("long-user-name", PASSWORD)
    answer = _change(_browser(app, user), PASSWORD, "Long-User-Name")
    assert answer.status_code == 422
    assert answer.get_json()["details"] == {
        "new_password": ["The password must not be the user name."]
    }


def test_a_session_must_send_its_csrf_token(app: Flask) -> None:
    browser = _browser(app, _user())
    answer = browser.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW}
    )
    assert answer.status_code == 400
    assert "CSRF" in answer.get_json()["message"]


def test_guessing_the_current_password_locks_like_the_login_page(app: Flask) -> None:
    user = _user()
    browser = _browser(app, user)
    for _ in range(FREE_FAILURES_PER_USER + 1):
        assert _change(browser, "guess", NEW).status_code == 403
    locked = _change(browser, PASSWORD, NEW)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 30
    assert service.authenticate_password(user.username, PASSWORD) is not None


def test_with_a_token_every_session_ends(app: Flask) -> None:
    user = _user()
    browser = _browser(app, user)
    _, token = service.create_token(user, "script", 1)
    api = ApiClient(app.test_client(), token)
    answer = api.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW}
    )
    assert answer.get_json() == {"sessions_ended": 1}
    assert not _signed_in(browser)


def test_an_admin_sets_a_users_password_and_signs_it_out_everywhere(any_db_app: Flask) -> None:
    admin, user = _user("admin"), _user()
    _, token = service.create_token(admin, "test", 1)
    api = ApiClient(any_db_app.test_client(), token)
    browsers = [_browser(any_db_app, user) for _ in range(2)]

    answer = api.post(f"/api/v1/users/{user.id}/password", json={"password": NEW})

    assert answer.status_code == 200 and answer.get_json() == {"sessions_ended": 2}
    assert not any(_signed_in(b) for b in browsers)
    assert service.authenticate_password(user.username, NEW) is not None
    (event,) = _audit("user.password.reset", user.username)
    assert event.actor == admin.username and event.details == {"sessions_ended": 2}
    refused = api.post(f"/api/v1/users/{user.id}/password", json={"password": "short"})
    assert refused.status_code == 422 and "password" in refused.get_json()["details"]
    missing = api.post("/api/v1/users/999999/password", json={"password": NEW})
    assert missing.status_code == 404


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_set_other_peoples_passwords(app: Flask, role: str) -> None:
    caller, user = _user(role), _user()
    _, token = service.create_token(caller, "test", 1)
    api = ApiClient(app.test_client(), token)
    answer = api.post(f"/api/v1/users/{user.id}/password", json={"password": NEW})
    assert answer.status_code == 403
    assert service.authenticate_password(user.username, PASSWORD) is not None


def test_an_admin_resetting_its_own_password_keeps_its_session(app: Flask) -> None:
    admin = _user("admin")
    here, elsewhere = _browser(app, admin), _browser(app, admin)
    answer = here.post(
        f"/api/v1/users/{admin.id}/password",
        json={"password": NEW},
        headers={"X-CSRFToken": here.csrf},  # type: ignore[attr-defined]
    )
    assert answer.get_json() == {"sessions_ended": 1}
    assert _signed_in(here) and not _signed_in(elsewhere)
