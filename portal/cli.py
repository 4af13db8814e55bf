"""The `spectr` command: set up, run the portal and workers, manage users, tokens, operations.

It works on the database directly (like `flask db`), so it runs where the portal's config is.
`spectr db ...` comes from Flask-Migrate and `spectr openapi print|write` from flask-smorest.
"""

from __future__ import annotations

import os
import secrets
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate import upgrade
from sqlalchemy import select

from portal.app import create_app


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False)
def cli() -> None:
    """Spectr, the control plane for AI infrastructure on Docker hosts."""


def main() -> None:
    cli(prog_name="spectr")


@cli.command("init")
@click.option("--admin", "admin_name", default="admin", show_default=True)
@with_appcontext
def init_command(admin_name: str) -> None:
    """Create or upgrade the database and the first admin user."""
    from portal.admin import service
    from portal.admin.models import User
    from portal.extensions import db

    upgrade(directory=current_app.extensions["migrate"].directory)
    click.echo(f"Database ready: {_safe_url(current_app.config['SQLALCHEMY_DATABASE_URI'])}")
    if db.session.scalar(select(User).filter_by(username=admin_name)):
        click.echo(f"User '{admin_name}' already exists; nothing else to do.")
        return
    password, generated = _initial_password()
    _or_exit(lambda: service.create_user(admin_name, password, "admin"))
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


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@with_appcontext
def run_command(host: str, port: int) -> None:
    """Serve the portal, with the embedded worker unless a Redis queue is configured."""
    from werkzeug.serving import run_simple

    from portal.web.server_errors import JsonErrorsRequestHandler
    from portal.worker import start_embedded_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["SPECTR_EMBEDDED_WORKER"]:
        start_embedded_worker(app)
    click.echo(f"Spectr portal on http://{host}:{port}/ (API docs at /api/docs)")
    run_simple(
        host, port, app, threaded=True, use_reloader=False, request_handler=JsonErrorsRequestHandler
    )


@cli.command("worker")
@click.option("--threads", type=int, default=None, help="Worker threads (SPECTR_WORKER_THREADS).")
@with_appcontext
def worker_command(threads: int | None) -> None:
    """Run a worker process: executes operations and periodic jobs."""
    from portal.worker import run_worker

    run_worker(current_app._get_current_object(), threads)  # type: ignore[attr-defined]


@cli.group("user")
def user_group() -> None:
    """Manage users."""


@user_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), default="viewer")
@click.password_option(envvar="SPECTR_NEW_USER_PASSWORD")
@with_appcontext
def user_create(username: str, role: str, password: str) -> None:
    """Create a user."""
    from portal.admin import service

    _or_exit(lambda: service.create_user(username, password, role))
    click.echo(f"Created {role} '{username}'.")


@user_group.command("list")
@with_appcontext
def user_list() -> None:
    """List users."""
    from portal.admin import service

    for user in service.list_users():
        state = "active" if user.active else "disabled"
        click.echo(f"{user.id:>4}  {user.username:<24} {user.role:<9} {state}")


@user_group.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["viewer", "operator", "admin"]))
@with_appcontext
def user_set_role(username: str, role: str) -> None:
    """Change a user's role."""
    from portal.admin import service

    user = _or_exit(lambda: service.get_user_by_name(username))
    service.update_user(user, role=role)
    click.echo(f"'{username}' is now {role}.")


@cli.group("token")
def token_group() -> None:
    """Manage API tokens."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="cli", show_default=True)
@click.option("--days", type=int, default=None, help="Days until it expires.")
@with_appcontext
def token_create(username: str, name: str, days: int | None) -> None:
    """Create an API token for a user and print it (once)."""
    from portal.admin import service

    user = _or_exit(lambda: service.get_user_by_name(username))
    token, plaintext = service.create_token(
        user, name, days or current_app.config["SPECTR_TOKEN_DEFAULT_DAYS"]
    )
    click.echo(f"Token {token.id} for '{username}' (shown once):", err=True)
    click.echo(plaintext)


@token_group.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def token_revoke(token_id: int) -> None:
    """Revoke an API token by id."""
    from portal.admin import service

    token = _or_exit(lambda: service.get_token(token_id))
    service.revoke_token(token)
    click.echo(f"Token {token_id} revoked.")


def _or_exit(action):  # type: ignore[no-untyped-def]
    from portal.core.errors import SpectrError

    try:
        return action()
    except SpectrError as exc:
        raise click.ClickException(exc.message) from exc


from portal.core.operations.cli import operation_group  # noqa: E402

cli.add_command(operation_group)

from portal.monitoring.cli import monitoring_group  # noqa: E402

cli.add_command(monitoring_group)

from portal.backup.cli import backup_group  # noqa: E402

cli.add_command(backup_group)

from portal.artifacts.cli import models_group  # noqa: E402

cli.add_command(models_group)
