"""Sessions that end for good, sign-in throttling and the last admin: real HTTP through the
test client against SQLite and Postgres."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from portal.admin import service
from portal.admin.models import LoginThrottle, User
from portal.admin.sessions import FREE_FAILURES_PER_USER, FREE_FAILURES_PER_USER_ANYWHERE
from portal.core.errors import Conflict
from portal.core.timeutil import utcnow
from portal.extensions import db
from tests.portal.conftest import PASSWORD, ApiClient


def _user(role: str = "viewer") -> User:
    return service.create_user(f"u-{uuid.uuid4().hex[:8]}", PASSWORD, role)


def _sign_in(client: FlaskClient, user: User, password: str = PASSWORD, address: str = "") -> Any:
    environ = {"REMOTE_ADDR": address} if address else {}
    return client.post(
        "/login",
        data={"username": user.username, "password": password},
        environ_base=environ,
    )


def _csrf(client: FlaskClient) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page)[1]


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


def test_a_cookie_kept_from_before_logout_no_longer_works(any_db_app: Flask) -> None:
    user = _user()
    browser = any_db_app.test_client()
    assert _sign_in(browser, user).status_code == 302
    saved = browser.get_cookie("session").value

    answer = browser.post("/logout", data={"csrf_token": _csrf(browser)})
    assert answer.status_code == 302
    thief = any_db_app.test_client()
    thief.set_cookie("session", saved)
    assert thief.get("/").status_code == 302  # to the login page
    assert thief.get("/api/v1/me").status_code == 401


def test_a_password_change_or_deactivation_ends_open_sessions(any_db_app: Flask) -> None:
    user = _user()
    first, second = any_db_app.test_client(), any_db_app.test_client()
    _sign_in(first, user)
    service.update_user(user, password="another-password-1")
    assert not _signed_in(first)
    _sign_in(second, user, "another-password-1")
    assert _signed_in(second)
    service.update_user(user, active=False)
    assert not _signed_in(second)


def test_sessions_are_listed_and_ended_one_by_one(any_db_app: Flask) -> None:
    user = _user()
    laptop, phone = any_db_app.test_client(), any_db_app.test_client()
    _sign_in(laptop, user)
    _sign_in(phone, user)
    listed = laptop.get("/api/v1/me/sessions").get_json()
    assert len(listed) == 2
    assert [s["current"] for s in listed].count(True) == 1
    other = next(s for s in listed if not s["current"])

    headers = {"X-CSRFToken": _csrf(laptop)}
    assert laptop.delete(f"/api/v1/me/sessions/{other['id']}", headers=headers).status_code == 204
    assert not _signed_in(phone)
    assert _signed_in(laptop)
    again = laptop.delete(f"/api/v1/me/sessions/{other['id']}", headers=headers)
    assert again.status_code == 404


def test_an_admin_ends_every_session_of_a_user(any_db_app: Flask) -> None:
    admin, user = _user("admin"), _user()
    _, token = service.create_token(admin, "test", 1)
    api = ApiClient(any_db_app.test_client(), token)
    browsers = [any_db_app.test_client() for _ in range(3)]
    for browser in browsers:
        _sign_in(browser, user)
    answer = api.delete(f"/api/v1/users/{user.id}/sessions")
    assert answer.status_code == 200 and answer.get_json() == {"ended": 3}
    assert not any(_signed_in(b) for b in browsers)
    audit = api.get("/api/v1/audit", query_string={"action": "session.end_all"}).get_json()
    assert audit[0]["target"] == f"user:{user.username}"


def test_wrong_passwords_lock_that_user_from_that_address_even_for_the_right_one(
    any_db_app: Flask,
) -> None:
    user = _user()
    browser = any_db_app.test_client()
    for _ in range(FREE_FAILURES_PER_USER + 1):  # the free ones, and one that locks
        assert _sign_in(browser, user, "wrong-password", "198.51.100.7").status_code == 401
    locked = _sign_in(browser, user, PASSWORD, "198.51.100.7")
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 30
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    assert not _signed_in(browser)

    # The same user from another address is not locked out by whoever guesses.
    elsewhere = any_db_app.test_client()
    assert _sign_in(elsewhere, user, PASSWORD, "198.51.100.8").status_code == 302

    # Once the lock has passed, the right password works and clears the count.
    db.session.execute(update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert _sign_in(browser, user, PASSWORD, "198.51.100.7").status_code == 302
    assert db.session.get(LoginThrottle, f"user:{user.username}@198.51.100.7") is None


@pytest.mark.slow  # 51 argon2 verifications per database
def test_guessing_from_many_addresses_locks_the_user_everywhere(any_db_app: Flask) -> None:
    user = _user()
    browser = any_db_app.test_client()
    for n in range(FREE_FAILURES_PER_USER_ANYWHERE + 1):
        _sign_in(browser, user, "wrong-password", f"198.51.100.{n % 250 + 1}")
    assert _sign_in(browser, user, PASSWORD, "203.0.113.9").status_code == 429


def test_other_users_typos_behind_one_proxy_lock_nobody_else(any_db_app: Flask) -> None:
    """Behind a reverse proxy every browser has the proxy's address."""
    user = _user()
    browser = any_db_app.test_client()
    for n in range(30):
        other = {"username": f"someone-{n}", "password": "typo"}
        browser.post("/login", data=other, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert _sign_in(browser, user, PASSWORD, "10.0.0.1").status_code == 302


def test_locks_grow_with_every_further_failure(any_db_app: Flask) -> None:
    user = _user()
    browser = any_db_app.test_client()
    key = f"user:{user.username}@198.51.100.9"
    locks = []
    for _ in range(FREE_FAILURES_PER_USER + 3):
        assert _sign_in(browser, user, "wrong-password", "198.51.100.9").status_code == 401
        row = db.session.get(LoginThrottle, key)
        db.session.refresh(row)
        locks.append(
            round((row.locked_until - utcnow()).total_seconds()) if row.locked_until else 0
        )
        row.locked_until = None  # let the next guess through, to see how long it locks
        db.session.commit()
    assert locks[:FREE_FAILURES_PER_USER] == [0] * FREE_FAILURES_PER_USER
    assert locks[FREE_FAILURES_PER_USER:] == [30, 60, 120]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"active": False}, "deactivate"),
        ({"role": "operator"}, "take the admin role from"),
    ],
)
def test_the_last_active_admin_cannot_lock_everyone_out(
    any_db_app: Flask, change: dict, words: str
) -> None:
    db.session.execute(update(User).where(User.role == "admin").values(active=False))
    db.session.commit()
    admin = _user("admin")
    _, token = service.create_token(admin, "test", 1)
    api = ApiClient(any_db_app.test_client(), token)

    refused = api.patch(f"/api/v1/users/{admin.id}", json=change)
    assert refused.status_code == 409
    assert (
        f"Cannot {words} '{admin.username}': it is the last active admin"
        in (refused.get_json()["message"])
    )
    second = _user("admin")
    assert api.patch(f"/api/v1/users/{admin.id}", json=change).status_code == 200
    with pytest.raises(Conflict, match="last active admin"):
        service.delete_user(second)
