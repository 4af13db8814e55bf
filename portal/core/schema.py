"""The database schema: whether `spectr init` made it, bringing it up to date, its revisions.

Alembic does the work through Flask-Migrate's configuration; this module gives the command
line plain answers (revision ids and their one-line descriptions) instead of Alembic's logging.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import inspect

from portal.extensions import db

VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class Revision:
    """One schema migration that Spectr ships."""

    id: str
    description: str


def _alembic_config() -> Config:
    migrate = current_app.extensions["migrate"]
    # quiet: migrations/env.py leaves Python's logging alone (see there).
    return migrate.migrate.get_config(migrate.directory, x_arg="quiet=1")


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def has_schema() -> bool:
    """Whether the database holds Spectr's tables (`spectr init` or `spectr db upgrade` ran)."""
    return inspect(db.engine).has_table(VERSION_TABLE)


def current_revision() -> Revision | None:
    """The revision the database is at, or None when it has no schema yet."""
    with db.engine.connect() as connection:
        at = MigrationContext.configure(connection).get_current_revision()
    return describe(at) if at else None


def newest_revision() -> Revision:
    """The newest revision this version of Spectr ships."""
    return describe(_scripts().get_current_head() or "")


def describe(revision_id: str) -> Revision:
    script = _scripts().get_revision(revision_id)
    return Revision(revision_id, (script.doc or "").strip() if script else "unknown revision")


def history() -> list[Revision]:
    """Every revision Spectr ships, newest first."""
    return [
        Revision(s.revision, (s.doc or "").strip())
        for s in _scripts().walk_revisions("base", "heads")
    ]


def upgrade_schema() -> list[Revision]:
    """Bring the schema to the newest revision; return the revisions applied, oldest first."""
    before = current_revision()
    command.upgrade(_alembic_config(), "heads")
    applied = []
    for revision in history():  # newest first, down to the one the database was at
        if before is not None and revision.id == before.id:
            break
        applied.append(revision)
    return applied[::-1]
