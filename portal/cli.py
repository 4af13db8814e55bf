"""The `spectr` command: a plain click group that builds the portal's app only when a command
needs it.

`spectr --help`, every group's help and `spectr --version` build nothing. A command that reads
the database first checks that `spectr init` made one, and otherwise says so in one line and
creates nothing (run from another folder, `spectr` used to leave an empty ./instance behind
and print a SQLAlchemy traceback). `init` and `db upgrade` make the database; `openapi` reads
none. Tests and deploy/docker/spectr-setup.py pass their own app as a flask ScriptInfo.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo
from flask_smorest.spec import openapi_cli
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from portal import __version__
from portal.admin.cli import token_group, user_group
from portal.apps.cli import apps_group
from portal.artifacts.cli import models_group
from portal.backup.cli import backup_group
from portal.catalog.cli import catalog_group
from portal.core.errors import SpectrError
from portal.core.operations.cli import operation_group
from portal.monitoring.cli import monitoring_group

# Commands, as the words after `spectr`, that run on an instance `spectr init` never set up.
MAKE_THE_DATABASE = (("init",), ("db", "upgrade"))
READ_NO_DATABASE = (("openapi",),)


class SpectrGroup(AppGroup):
    """flask's AppGroup (each command runs in an app context, the app built on first use),
    whose commands' SpectrErrors end as click's one-line error with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpectrError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=SpectrGroup)
@click.version_option(__version__, prog_name="Spectr", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Spectr, the control plane for AI infrastructure on Docker hosts.

    Settings are SPECTR_* environment variables (the README lists them). The embedded
    instance (SQLite database, queue, keys) is the folder SPECTR_INSTANCE_PATH, by default
    ./instance: run `spectr` where you ran `spectr init`, or set it.
    """
    if not isinstance(ctx.obj, ScriptInfo):
        ctx.obj = ScriptInfo(create_app=_app_for_command, set_debug_flag=False)


def main() -> None:
    cli(prog_name="spectr")


def _app_for_command() -> Flask:
    """Build the app for the command being run, refusing one that needs a missing database."""
    from portal.app import create_app

    ctx = click.get_current_context()
    words = tuple(ctx.command_path.split()[1:])
    if _one_of(words, READ_NO_DATABASE):
        # Nothing of the instance is read: build on a throwaway folder, not ./instance.
        folder = ctx.with_resource(tempfile.TemporaryDirectory(prefix="spectr-"))
        return create_app({"SPECTR_INSTANCE_PATH": folder})
    if _one_of(words, MAKE_THE_DATABASE):
        return create_app()
    _refuse_a_missing_database_file()
    app = create_app()
    with app.app_context():
        _refuse_a_database_without_schema()
    return app


def _one_of(words: tuple[str, ...], commands: tuple[tuple[str, ...], ...]) -> bool:
    return any(words[: len(command)] == command for command in commands)


def _refuse_a_missing_database_file() -> None:
    """Before the app exists: building it would create the instance folder and its keys."""
    from portal.app import instance_path
    from portal.config import default_database_url

    url = make_url(
        os.environ.get("SPECTR_DATABASE_URL") or default_database_url(Path(instance_path()))
    )
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if not Path(url.database).exists():
        raise click.ClickException(
            f"no Spectr database at {url.database}: run `spectr init` "
            "(or set SPECTR_INSTANCE_PATH to the instance folder you made)"
        )


def _refuse_a_database_without_schema() -> None:
    from portal.core.schema import has_schema

    where = _safe_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        ready = has_schema()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
        raise click.ClickException(f"cannot reach the database at {where}: {reason}") from None
    if not ready:
        raise click.ClickException(f"no Spectr database at {where}: run `spectr init`")


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@cli.command("init")
@click.option("--admin", "admin_name", default="admin", show_default=True, help="First admin.")
def init_command(admin_name: str) -> None:
    """Create or upgrade the database and the first admin user."""
    from portal.admin import service
    from portal.core.errors import NotFound
    from portal.core.schema import upgrade_schema

    upgrade_schema()
    click.echo(f"Database ready: {_safe_url(current_app.config['SQLALCHEMY_DATABASE_URI'])}")
    try:
        service.get_user_by_name(admin_name)
    except NotFound:
        pass
    else:
        click.echo(f"User '{admin_name}' already exists; nothing else to do.")
        return
    password, generated = _initial_password()
    service.create_user(admin_name, password, "admin")
    click.echo(f"Created admin user '{admin_name}'.")
    if generated:
        click.echo(f"Its password (shown once): {password}")


def _initial_password() -> tuple[str, bool]:
    from_env = os.environ.get("SPECTR_ADMIN_PASSWORD")
    if from_env:
        return from_env, False
    if sys.stdin.isatty():
        return click.prompt(
            "Password for the admin", hide_input=True, confirmation_prompt=True
        ), False
    return secrets.token_urlsafe(15), True


@cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 takes a free one (the line printed at start names it).",
)
def run_command(host: str, port: int) -> None:
    """Serve the portal, with the embedded worker unless a Redis queue is configured."""
    from werkzeug.serving import make_server

    from portal.web.server_errors import JsonErrorsRequestHandler
    from portal.worker import start_embedded_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Bound before anything is printed: the line below names the port the server holds, the one
    # a script that asked for port 0 reads back (no window for another process to take it).
    server = make_server(host, port, app, threaded=True, request_handler=JsonErrorsRequestHandler)
    if app.config["SPECTR_EMBEDDED_WORKER"]:
        start_embedded_worker(app)
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address, as a URL writes it
    click.echo(f"Spectr portal on http://{shown}:{server.port}/ (API docs at /api/docs)")
    server.serve_forever()


@cli.command("worker")
@click.option("--threads", type=int, default=None, help="Worker threads (SPECTR_WORKER_THREADS).")
def worker_command(threads: int | None) -> None:
    """Run a worker process: executes operations and periodic jobs."""
    from portal.worker import run_worker

    run_worker(current_app._get_current_object(), threads)  # type: ignore[attr-defined]


@cli.group("db")
def db_group() -> None:
    """Database schema: upgrade, current revision, history."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema up to this Spectr's version (safe to repeat; `spectr init` does it too)."""
    from portal.core.schema import current_revision, upgrade_schema

    for revision in upgrade_schema():
        click.echo(f"applied {revision.id}  {revision.description}")
    now = current_revision()
    where = _safe_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    click.echo(f"Schema up to date at {now.id if now else '?'}: {where}")


@db_group.command("current")
def db_current() -> None:
    """Show the schema revision the database is at, and whether it is the newest."""
    from portal.core.schema import current_revision, newest_revision

    now, newest = current_revision(), newest_revision()
    assert now is not None  # the database check before any command made sure of it
    click.echo(f"{now.id}  {now.description}")
    if now.id == newest.id:
        click.echo("The newest revision this Spectr ships.")
    else:
        click.echo(f"Behind {newest.id} ({newest.description}): run `spectr db upgrade`.")


@db_group.command("history")
def db_history() -> None:
    """List the schema revisions this Spectr ships, newest first; * marks the database's."""
    from portal.core.schema import current_revision, history

    now = current_revision()
    for revision in history():
        mark = "*" if now and revision.id == now.id else " "
        click.echo(f"{mark} {revision.id}  {revision.description}")


@cli.group("openapi")
def openapi_group() -> None:
    """The REST API's OpenAPI document: print or write it."""


for name in ("print", "write"):
    openapi_group.add_command(openapi_cli.commands[name])

for group in (
    user_group,
    token_group,
    operation_group,
    catalog_group,
    models_group,
    apps_group,
    backup_group,
    monitoring_group,
):
    cli.add_command(group)
