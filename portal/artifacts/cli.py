"""`spectr models ...`: import model files, put them on hosts, see where they are."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from portal.core.errors import SpectrError
from portal.core.operations.cli import follow_operation
from portal.extensions import db


@click.group("models")
def models_group() -> None:
    """Model files: import, distribute to hosts, list where they are."""


def _or_exit(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except SpectrError as exc:
        raise click.ClickException(exc.message) from exc


def _run_here_and_follow(operation_id: str) -> None:
    """Run the operation in this process (a worker that claims it first wins) and follow it.

    The import reads files on this machine, so doing the work where the command runs needs no
    worker to be up; the operation's row, log and audit are the same as through the API.
    """
    from portal.core.operations.runner import run_operation

    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def work() -> None:
        with app.app_context():
            run_operation(operation_id)

    threading.Thread(target=work, name=f"operation-{operation_id}", daemon=True).start()
    follow_operation(operation_id, interval=0.3)


def _host_ids(values: tuple[str, ...]) -> list[int]:
    from portal.hosts.models import Host
    from portal.hosts.service import ensure_local_host

    ensure_local_host()  # the Spectr node is a host by name (spectr-node) from the start
    ids = []
    for value in values:
        column = Host.id if value.isdigit() else Host.name
        host_id = db.session.scalar(select(Host.id).where(column == value))
        if host_id is None:
            raise click.ClickException(f"No host '{value}'.")
        ids.append(host_id)
    return ids


@models_group.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="The model's name in the catalog (new or existing).")
@click.option("--license", "license_", default=None, help="The model's license, e.g. apache-2.0.")
@with_appcontext
def import_command(path: Path, name: str, license_: str | None) -> None:
    """Import a model file (a GGUF) or folder on this machine into Spectr's registry."""
    from portal.artifacts import service

    overrides = {"license": license_} if license_ else {}
    operation = _or_exit(
        lambda: service.import_folder(name, str(path.resolve()), {"overrides": overrides})
    )
    click.echo(f"operation {operation.id}: importing {path} as {name}", err=True)
    _run_here_and_follow(operation.id)


@models_group.command("distribute")
@click.argument("model")
@click.option("--host", "hosts", multiple=True, required=True, help="Host name or id (repeat).")
@click.option("--revision", type=int, default=None, help="Default: the latest.")
@with_appcontext
def distribute_command(model: str, hosts: tuple[str, ...], revision: int | None) -> None:
    """Put a model revision into the cache of one or more hosts, with live progress."""
    from portal.artifacts import service

    entry = _or_exit(lambda: service.model_by_name_or_id(model))
    operation = _or_exit(lambda: service.distribute(entry, _host_ids(hosts), revision))
    click.echo(f"operation {operation.id}: distributing {entry.name}", err=True)
    _run_here_and_follow(operation.id)


@models_group.command("hosts")
@click.argument("model")
@with_appcontext
def hosts_command(model: str) -> None:
    """List the hosts whose cache holds the model, with revision, size and path."""
    from portal.artifacts import service

    rows = service.holders(_or_exit(lambda: service.model_by_name_or_id(model)))
    if not rows:
        click.echo("No host holds this model yet: spectr models distribute MODEL --host HOST")
    for row in rows:
        click.echo(
            f"{row.host.name:<24} r{row.revision.number:<4} {row.state:<8} "
            f"{row.size_bytes:>14} B  {row.path or row.error or ''}"
        )


@models_group.command("files")
@click.argument("model")
@click.option("--revision", type=int, default=None, help="Default: the latest.")
@with_appcontext
def files_command(model: str, revision: int | None) -> None:
    """List a revision's files with their sha256 and size."""
    from portal.artifacts import service

    entry = _or_exit(lambda: service.model_by_name_or_id(model))
    found = _or_exit(lambda: service.get_revision(entry, revision))
    click.echo(f"{entry.name} r{found.number} {found.manifest_digest} {found.size_bytes} B")
    for item in found.files:
        click.echo(f"  {item.digest}  {item.size_bytes:>14}  {item.path}")
