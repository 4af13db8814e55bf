"""`spectr backup create | restore FILE | restore-registry FILE | delete NAME | prune --keep N`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

ARCHIVE = click.Path(exists=True, dir_okay=False, path_type=Path)
BLOBS = click.option(
    "--blobs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The backups' blob store, if not blobs/ beside the archive.",
)


@click.group("backup")
def backup_group() -> None:
    """Back up and restore Spectr's state and its registry's content."""


def _say(line: str) -> None:
    click.echo(line, err=True)


def _run(action: Callable[[], Any]) -> Any:
    from portal.core.errors import SpectrError

    try:
        return action()
    except SpectrError as exc:
        raise click.ClickException(exc.message) from exc


@backup_group.command("create")
@with_appcontext
def backup_create() -> None:
    """Write a backup now (database, keys, CA, registry content); print its path."""
    from portal.backup import service

    click.echo(str(_run(lambda: service.create_backup(log=_say))))


@backup_group.command("restore")
@click.argument("archive", type=ARCHIVE)
@BLOBS
@click.option("--skip-registry", is_flag=True, help="Restore the database and keys only.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def backup_restore(archive: Path, blobs: Path | None, skip_registry: bool, yes: bool) -> None:
    """Replace the database and keys with a backup's, then put its registry content back.

    Stop the portal and workers first.
    """
    from portal.backup import restore

    if not yes:
        click.confirm("This replaces the current database and keys. Continue?", abort=True)
    result = _run(lambda: restore.restore_backup(archive, _say, blobs, not skip_registry))
    if result.get("registry_error"):
        click.echo("Restored, except the registry's content (see above).")
    else:
        click.echo("Restored. Start the portal and workers again.")


@backup_group.command("restore-registry")
@click.argument("archive", type=ARCHIVE)
@BLOBS
@with_appcontext
def backup_restore_registry(archive: Path, blobs: Path | None) -> None:
    """Push a backup's images and model artifacts into Spectr's registry."""
    from portal.backup import restore

    _run(lambda: restore.restore_registry_content(archive, _say, blobs=blobs))
    click.echo("Registry content restored.")


@backup_group.command("delete")
@click.argument("name")
@with_appcontext
def backup_delete(name: str) -> None:
    """Delete a backup and the blobs no other backup refers to."""
    from portal.backup import service

    deleted = _run(lambda: service.delete_backup(name))
    click.echo(f"Deleted {name}; {_freed(deleted)}.")


@backup_group.command("prune")
@click.option("--keep", type=click.IntRange(min=1), required=True, help="Backups to keep.")
@with_appcontext
def backup_prune(keep: int) -> None:
    """Delete all but the newest KEEP backups, and the blobs only they referred to."""
    from portal.backup import service

    for deleted in _run(lambda: service.prune_backups(keep)):
        click.echo(f"Deleted {deleted['name']}; {_freed(deleted)}.")


def _freed(deleted: dict[str, Any]) -> str:
    if deleted.get("collection_skipped"):
        return f"blobs kept ({deleted['collection_skipped']})"
    return f"{deleted['blobs_removed']} blob(s) removed, {deleted['bytes_freed']} bytes freed"
