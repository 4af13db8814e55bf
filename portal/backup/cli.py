"""`spectr backup create | restore FILE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext


@click.group("backup")
def backup_group() -> None:
    """Back up and restore Spectr's state."""


@backup_group.command("create")
@with_appcontext
def backup_create() -> None:
    """Write a backup now (database, instance keys, CA, registry metadata); print its path."""
    from portal.backup import service
    from portal.core.errors import SpectrError

    try:
        path = service.create_backup(log=lambda line: click.echo(line, err=True))
    except SpectrError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(str(path))


@backup_group.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def backup_restore(archive: Path, yes: bool) -> None:
    """Replace the database and instance keys with a backup's; stop the portal and workers first."""
    from portal.backup import service
    from portal.core.errors import SpectrError

    if not yes:
        click.confirm("This replaces the current database and keys. Continue?", abort=True)
    try:
        service.restore_backup(archive, log=lambda line: click.echo(line, err=True))
    except SpectrError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo("Restored. Start the portal and workers again.")
