"""Fixtures for portal tests: an app on SQLite or Postgres, clients, factories of users.

Database-layer tests take the `any_db_app` fixture and run once on SQLite and once on the
real Postgres; each Postgres test session gets its own database, emptied between tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from portal.app import create_app
from portal.extensions import db
from tests.support.receiver import Receiver

POSTGRES_ADMIN_URL = os.environ.get(
    "SPECTR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SPECTR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "correct horse battery"


@contextlib.contextmanager
def new_postgres_database(prefix: str = "spectr_test") -> Iterator[str]:
    """An empty database of its own on the machine's Postgres (its SQLAlchemy URL), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def in_context(application: Flask) -> Iterator[Flask]:
    """The app's context for a whole test; its sessions and pool closed after."""
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own on the machine's Postgres, dropped at the end."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies, so migrations run once per session."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    app = create_app(_test_config(folder, f"sqlite:///{folder / 'spectr.db'}"))
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        db.engine.dispose()
    return folder / "spectr.db"


@pytest.fixture(scope="session")
def postgres_migrated(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("pg-migrate")
    app = create_app(_test_config(folder, postgres_database))
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        db.engine.dispose()
    return postgres_database


def _test_config(instance: Path, database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SPECTR_INSTANCE_PATH": str(instance),
        "SPECTR_DATABASE_URL": database_url,
        "SPECTR_QUEUE_IMMEDIATE": True,
        "SPECTR_OPERATION_RETRY_BASE_SECONDS": 0.01,
        "SPECTR_LOG_LEVEL": "WARNING",
        **extra,
    }


def _make_sqlite_app(tmp_path: Path, template: Path, **extra: Any) -> Flask:
    shutil.copy(template, tmp_path / "spectr.db")
    return create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'spectr.db'}", **extra))


def _make_postgres_app(tmp_path: Path, url: str, **extra: Any) -> Flask:
    app = create_app(_test_config(tmp_path, url, **extra))
    with app.app_context():
        tables = ", ".join(
            f'"{t.name}"' for t in db.metadata.sorted_tables if t.name != "alembic_version"
        )
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
    return app


@pytest.fixture
def app(tmp_path: Path, sqlite_template: Path) -> Iterator[Flask]:
    """The portal on SQLite (the embedded default), with operations run at enqueue time."""
    application = _make_sqlite_app(tmp_path, sqlite_template)
    with in_context(application):
        yield application


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_app(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Flask]:
    """The portal on each database Spectr supports."""
    if request.param == "sqlite":
        application = _make_sqlite_app(tmp_path, sqlite_template)
    else:
        application = _make_postgres_app(tmp_path, request.getfixturevalue("postgres_migrated"))
    with in_context(application):
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def create_user(app: Flask) -> Callable[..., Any]:
    """Factory: create_user(role="viewer", username=None) -> User."""
    from portal.admin import service

    def make(role: str = "viewer", username: str | None = None) -> Any:
        return service.create_user(username or f"{role}-{uuid.uuid4().hex[:6]}", PASSWORD, role)

    return make


class ApiClient:
    """A test client that sends a bearer token and JSON."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def api_as(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> Callable[[str], ApiClient]:
    """Factory: api_as("operator") -> ApiClient for a new user with that role."""
    from portal.admin import service

    def make(role: str) -> ApiClient:
        user = create_user(role)
        _, plaintext = service.create_token(user, "test", 1)
        return ApiClient(client, plaintext)

    return make


def _is_loopback(host: object) -> bool:
    import ipaddress

    text = str(host)
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_only_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse, inside this process, any name lookup or connection beyond 127.0.0.0/8.

    Generated requests may register hosts, registries or webhooks at made-up addresses; this
    guard keeps the machine's rule that nothing is aimed anywhere but loopback.
    """
    import socket

    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"lookup of {host} refused in tests")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded(real: Any) -> Any:
        def connect(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
                raise ConnectionRefusedError(f"connection to {address[0]} refused in tests")
            return real(sock, address)

        return connect

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Factory: receiver(failures=0) -> a started Receiver, closed after the test."""
    made: list[Receiver] = []

    def make(failures: int = 0) -> Receiver:
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def queue_only_app(tmp_path, sqlite_template):
    """The API with a queue no worker reads: generated requests never run real operations
    (deploys, bootstraps, registry changes) on this machine; the HTTP layer is what is tested."""
    shutil.copy(sqlite_template, tmp_path / "spectr.db")
    config = _test_config(
        tmp_path, f"sqlite:///{tmp_path / 'spectr.db'}", SPECTR_QUEUE_IMMEDIATE=False
    )
    application = create_app(config)
    with in_context(application):
        yield application
