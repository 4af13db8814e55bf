"""The portal when Postgres drops its connections (a restart) or cannot be reached: never a 500.

Connections are ended the way a restart ends them, by the real server (pg_terminate_backend
sends the same FATAL 57P01 as a shutdown); "down" is a port where nothing listens.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from portal.admin import service
from portal.app import create_app
from portal.extensions import db
from tests.portal.conftest import PASSWORD, POSTGRES_ADMIN_URL, _make_postgres_app, _test_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_app(tmp_path: Path, postgres_migrated: str) -> Iterator[Flask]:
    """The portal on Postgres with no app context held open, as under gunicorn: each request
    checks a connection out of the pool and gives it back."""
    application = _make_postgres_app(tmp_path, postgres_migrated)
    yield application
    with application.app_context():
        db.engine.dispose()


def _token(app: Flask) -> str:
    with app.app_context():
        user = service.create_user("outage-admin", PASSWORD, "admin")
        _, plaintext = service.create_token(user, "test", 1)
        db.session.remove()
    return plaintext


def _end_server_connections(app: Flask) -> int:
    """End every connection the server has to the app's database; wait until they are gone."""
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(ended)


def test_requests_after_the_server_ended_every_pooled_connection_succeed(pg_app: Flask) -> None:
    client = pg_app.test_client()
    headers = {"Authorization": f"Bearer {_token(pg_app)}"}
    # Three connections in the pool, as after concurrent requests.
    with pg_app.app_context():
        held = [db.engine.connect() for _ in range(3)]
        for conn in held:
            conn.execute(text("SELECT 1"))
            conn.close()
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert _end_server_connections(pg_app) >= 3

    for _ in range(4):
        assert client.get("/healthz").status_code == 200
        me = client.get("/api/v1/me", headers=headers)
        assert me.status_code == 200, me.get_data(as_text=True)
        assert me.json["username"] == "outage-admin"


def test_a_connection_lost_in_the_middle_of_a_request_is_a_503_then_the_next_succeeds(
    pg_app: Flask,
) -> None:
    client = pg_app.test_client()
    with pg_app.app_context():
        # The request reuses this app context's session, which holds its connection: the
        # server ends it between the request's statements, after the checkout check passed.
        db.session.execute(text("SELECT 1"))
        _end_server_connections(pg_app)
        lost = client.get("/healthz")
        db.session.remove()
    assert lost.status_code == 503
    assert lost.headers["Retry-After"] == "2"
    assert lost.json == {
        "code": "unavailable",
        "message": "The database is not reachable right now; try again.",
        "details": {},
    }
    assert client.get("/healthz").status_code == 200


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


@pytest.fixture
def down_app(tmp_path: Path) -> Iterator[Flask]:
    """The portal configured for a Postgres that does not answer (stopped, restarting)."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/spectr"
    application = create_app(_test_config(tmp_path, url))
    yield application
    with application.app_context():
        db.engine.dispose()


def test_a_database_that_does_not_answer_is_a_503_with_retry_after(down_app: Flask) -> None:
    client = down_app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.headers["Retry-After"] == "2"
    assert health.json["code"] == "unavailable"
    # The caller is identified from the database first: a bearer request fails there, the same way.
    api = client.get("/api/v1/me", headers={"Authorization": "Bearer spectr_x"})
    assert (api.status_code, api.json["code"]) == (503, "unavailable")
    assert client.get("/login").status_code == 200  # a page that needs no database renders
    login = client.post(
        "/login", data={"username": "admin", "password": "x"}, headers={"Accept": "text/html"}
    )
    assert login.status_code == 503
    assert login.headers["Retry-After"] == "2"
    assert "text/html" in login.headers["Content-Type"]


def test_a_signed_in_browser_gets_the_503_page_while_the_database_is_away(down_app: Flask) -> None:
    client = down_app.test_client()
    with client.session_transaction() as session:  # what flask-login keeps after a sign-in
        session["_user_id"] = "1:1"
    for path in ("/", "/operations"):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 503, path
        assert page.headers["Retry-After"] == "2"
        assert "The database is not reachable right now" in page.get_data(as_text=True)


def test_statement_errors_stay_errors_not_unavailable(pg_app: Flask) -> None:
    """Only an unreachable database is a 503: a failing statement is not hidden behind it."""
    from sqlalchemy.exc import DBAPIError

    from portal.core.db_outage import database_unavailable

    with pg_app.app_context():
        with pytest.raises(DBAPIError) as caught:
            db.session.execute(text("SELECT * FROM no_such_table"))
        db.session.rollback()
    assert not database_unavailable(caught.value)


def test_a_connection_made_for_the_checkout_is_not_discarded_twice(postgres_migrated: str) -> None:
    """SQLAlchemy gives a checkout two tries; a replacement that the restart also closed must
    fail on its statement (an OperationalError, a 503), not exhaust them (a bare 500)."""
    from types import SimpleNamespace

    from sqlalchemy.exc import DisconnectionError

    from portal.core.db_outage import _discard_if_closed_by_server, _mark_fresh

    url = make_url(postgres_migrated).set(drivername="postgresql")
    conn = psycopg.connect(url.render_as_string(hide_password=False))
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (conn.info.backend_pid,))
    record = SimpleNamespace(info={})
    try:
        _mark_fresh(conn, record)
        _discard_if_closed_by_server(conn, record, None)  # fresh: left to its first statement
        with pytest.raises(DisconnectionError):
            _discard_if_closed_by_server(conn, record, None)  # pooled: replaced
    finally:
        conn.close()


def test_a_server_gone_before_the_session_ends_does_not_fail_the_request(pg_app: Flask) -> None:
    """The end-of-request rollback meets a connection the server just ended (a shutdown after
    the answer was made): logged and dropped, never raised (gunicorn would send a 500)."""
    with pg_app.app_context():
        db.session.execute(text("SELECT 1"))  # a transaction is open on a pooled connection
        assert _end_server_connections(pg_app) >= 1
    with pg_app.app_context():  # and the next request gets a working connection
        assert db.session.execute(text("SELECT 2")).scalar() == 2
