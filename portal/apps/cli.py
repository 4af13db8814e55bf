"""`spectr apps ...`: list applications and start their operations from a shell."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.apps import service
from portal.apps.models import Application
from portal.core.errors import SpectrError
from portal.extensions import db


def _find(name: str, host_id: int | None) -> Application:
    query = select(Application).where(Application.name == name)
    if host_id:
        query = query.where(Application.host_id == host_id)
    apps = list(db.session.scalars(query))
    if len(apps) != 1:
        raise click.ClickException(
            f"No application '{name}'."
            if not apps
            else f"'{name}' is on several hosts; pass --host."
        )
    return apps[0]


def _started(operation: object) -> None:
    click.echo(f"operation {operation.id} {operation.state}: spectr operation watch {operation.id}")  # type: ignore[attr-defined]


@click.group("apps", cls=AppGroup)
def apps_group() -> None:
    """Applications: list, deploy, start, stop, roll back.

    Every command but `list` starts an operation and prints how to follow it.
    """


@apps_group.command("list")
def list_command() -> None:
    """List applications with host, revision and status."""
    for app in service.list_apps():
        revision = f"{app.deployed_revision or '-'}/{app.latest_revision}"
        click.echo(
            f"{app.id:>4}  {app.name:<32} host={app.host_id:<4} rev={revision:<7} {app.status}"
        )


for action in ("deploy", "start", "stop", "restart", "pull", "remove"):

    @apps_group.command(action, help=f"{action.capitalize()} an application: starts an operation.")
    @click.argument("name")
    @click.option("--host", "host_id", type=int, help="host id, when the name is on several")
    def run_action(name: str, host_id: int | None, action: str = action) -> None:
        app = _find(name, host_id)
        try:
            _started(service.deploy(app) if action == "deploy" else service.act(app, action))
        except SpectrError as exc:
            raise click.ClickException(exc.message) from None


@apps_group.command("rollback")
@click.argument("name")
@click.argument("revision", type=int)
@click.option("--host", "host_id", type=int)
def rollback_command(name: str, revision: int, host_id: int | None) -> None:
    """Deploy a copy of an older revision as the newest one."""
    try:
        _started(service.rollback(_find(name, host_id), revision))
    except SpectrError as exc:
        raise click.ClickException(exc.message) from None
