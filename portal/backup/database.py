"""Dump and restore the database: SQLite's online backup API, or pg_dump / pg_restore."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from portal.core.errors import SpectrError

SQLITE_FILE = "spectr.sqlite"
POSTGRES_FILE = "spectr.pgdump"


class BackupError(SpectrError):
    status = 409
    code = "backup_failed"


def dialect_of(database_url: str) -> str:
    return "sqlite" if make_url(database_url).get_backend_name() == "sqlite" else "postgresql"


def dump_database(database_url: str, folder: Path) -> Path:
    """Write a consistent copy of the database into `folder`; return the file."""
    if dialect_of(database_url) == "sqlite":
        target = folder / SQLITE_FILE
        _sqlite_copy(_sqlite_path(database_url), target)
        return target
    target = folder / POSTGRES_FILE
    _run_pg("pg_dump", ["--format=custom", "--no-owner", "--file", str(target)], database_url)
    return target


def restore_database(database_url: str, dump: Path) -> None:
    """Replace the database's content with a dump made by `dump_database`."""
    if dialect_of(database_url) == "sqlite":
        _sqlite_copy(dump, _sqlite_path(database_url))
        return
    options = ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(dump)]
    _run_pg("pg_restore", options, database_url)


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up.")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    # The backup API copies page by page under SQLite's locks: consistent while others write.
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _run_pg(tool: str, options: list[str], database_url: str) -> None:
    binary = shutil.which(tool)
    if binary is None:
        raise BackupError(
            f"{tool} is not installed: install the PostgreSQL client of the server's major "
            "version (Debian: postgresql-client)."
        )
    url = make_url(database_url)
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    argv = [binary, *options, "--dbname", _libpq_url(url)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")


def _libpq_url(url: URL) -> str:
    # The password goes through PGPASSWORD, never on the command line (ps shows argv).
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False)
