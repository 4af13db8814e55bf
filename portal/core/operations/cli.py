"""`spectr operation list|show|watch`: operations from the terminal, with a live progress bar."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from portal.core.errors import SpectrError
from portal.core.operations import service
from portal.core.operations.schemas import OperationSchema
from portal.extensions import db


@click.group("operation")
def operation_group() -> None:
    """Inspect and follow operations."""


@operation_group.command("list")
@click.option("--state", default=None)
@click.option("--kind", default=None)
@click.option("--limit", default=20, show_default=True)
@with_appcontext
def list_command(state: str | None, kind: str | None, limit: int) -> None:
    """List recent operations."""
    query = service.list_operations(state=state, kind=kind).limit(limit)
    for op in db.session.scalars(query):
        click.echo(
            f"{op.id}  {op.kind:<16} {op.state:<10} {op.progress * 100:5.1f}%  "
            f"{op.target or '':<24} {op.created_at:%Y-%m-%d %H:%M:%S}"
        )


@operation_group.command("show")
@click.argument("operation_id")
@with_appcontext
def show_command(operation_id: str) -> None:
    """Print one operation as JSON."""
    click.echo(json.dumps(OperationSchema().dump(_get(operation_id)), indent=2, default=str))


@operation_group.command("watch")
@click.argument("operation_id")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between polls.")
@with_appcontext
def watch_command(operation_id: str, interval: float) -> None:
    """Follow an operation: its log lines and a progress bar, until it ends."""
    follow_operation(operation_id, interval)


def follow_operation(operation_id: str, interval: float = 0.5) -> None:
    """Print an operation's log lines under a progress bar until it ends; exit 1 unless it succeeded."""
    op = _get(operation_id)
    with click.progressbar(length=1000, label=f"{op.kind} {op.state}", show_eta=False) as bar:
        done = 0
        for lines, op, _ in service.follow_log(operation_id, poll_seconds=interval):
            for line in lines:
                click.echo(f"\n{line.at:%H:%M:%S} {line.level:<7} {line.message}", nl=False)
            target = int(op.progress * 1000)
            bar.label = f"{op.kind} {op.state}"
            bar.update(max(target - done, 0))
            done = max(done, target)
    click.echo(f"\n{op.state}" + (f": {op.error}" if op.error else ""))
    if op.state != "succeeded":
        raise SystemExit(1)


def _get(operation_id: str):  # type: ignore[no-untyped-def]
    try:
        return service.get_operation(operation_id)
    except SpectrError as exc:
        raise click.ClickException(exc.message) from exc
