"""Flask extensions, created unbound and initialised by the app factory."""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from flask import Flask
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase

from portal.core.api_base import SpectrApi

# Stable constraint names, so Alembic migrations can drop them on SQLite and Postgres alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TaskQueue(Huey):
    """A huey instance whose storage is chosen by the app config, after tasks are declared.

    Tasks decorate this object at import time; `init_app` swaps in the storage (Redis,
    SQLite or memory) that the configuration names, keeping the registered tasks.
    """

    flask_app: Flask

    def __init__(self) -> None:
        super().__init__(
            "spectr", results=False, immediate=False, storage_class=MemoryHuey.storage_class
        )

    def init_app(self, app: Flask) -> None:
        cfg = app.config
        self.name = cfg["SPECTR_QUEUE_NAME"]
        self._immediate = bool(cfg.get("SPECTR_QUEUE_IMMEDIATE", False))
        storage_class, kwargs = _queue_storage(cfg)
        self.storage_class = storage_class
        self.storage_kwargs = kwargs
        self.storage = self.create_storage()
        self.flask_app = app
        app.extensions["spectr_queue"] = self

    def submit(self, task: Any, *args: Any, delay: float | None = None) -> None:
        """Enqueue `task(*args)`, after `delay` seconds if given.

        In immediate mode (tests) everything runs inline, so a delayed task waits inline too.
        """
        if delay and not self.immediate:
            task.schedule(args, delay=delay)
            return
        if delay:
            time.sleep(delay)
        task(*args)


def commit_keeping_loaded() -> None:
    """Commit without expiring loaded objects, for callers that answer with what they wrote.

    Reloading a just-created row after its commit cost a round trip per accepted operation.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


@event.listens_for(Engine, "connect")
def _enforce_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite checks foreign keys only when asked, per connection; Postgres always does."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _queue_storage(cfg: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    if cfg.get("SPECTR_QUEUE_IMMEDIATE"):
        return MemoryHuey.storage_class, {}
    if cfg.get("SPECTR_REDIS_URL"):
        return RedisHuey.storage_class, {"url": cfg["SPECTR_REDIS_URL"]}
    from pathlib import Path

    queue_file = Path(cfg["SPECTR_INSTANCE_PATH_RESOLVED"]) / "queue.db"
    return SqliteHuey.storage_class, {"filename": str(queue_file)}


class SpectrSQLAlchemy(SQLAlchemy):
    """flask-sqlalchemy whose end-of-request cleanup survives a database that just went away.

    The session's last act is a rollback on its connection; when Postgres shut down in the
    meantime that rollback raises, after the answer was made, and gunicorn would turn it into a
    500. SQLAlchemy has already invalidated the connection (the pool replaces it), so the
    failure is logged and the session dropped all the same.
    """

    def _teardown_session(self, exc: BaseException | None) -> None:
        try:
            super()._teardown_session(exc)
        except DBAPIError as error:
            log.warning("database connection lost while ending a session: %s", error.orig)
            self.session.registry.clear()


db = SpectrSQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
api = SpectrApi()
queue = TaskQueue()
login_manager = LoginManager()
csrf = CSRFProtect()
