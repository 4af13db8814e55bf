"""Create and restore backups: one tar.gz under <instance>/backups with a manifest.json.

Inside: the database dump, the instance keys (encryption key, session key), the Spectr CA,
and the registry metadata (registries known and the catalog of Spectr's registry). Registry
blobs are not copied: they live on the registry's storage, backed up with its host.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import text

from portal import __version__
from portal.backup.database import BackupError, dialect_of, dump_database, restore_database
from portal.core.errors import NotFound
from portal.extensions import db

FORMAT = 1
KEY_FILES = ("encryption.key", "secret_key", "pki/ca.crt", "pki/ca.key")
Log = Callable[[str], None]


def backups_folder() -> Path:
    folder = Path(current_app.instance_path) / "backups"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def list_backups() -> list[dict[str, Any]]:
    files = sorted(backups_folder().glob("spectr-backup-*.tar.gz"), reverse=True)
    return [
        {"name": f.name, "size": f.stat().st_size,
         "created_at": datetime.fromtimestamp(f.stat().st_mtime, UTC)}
        for f in files
    ]  # fmt: skip


def backup_path(name: str) -> Path:
    path = backups_folder() / name
    if "/" in name or not name.startswith("spectr-backup-") or not path.is_file():
        raise NotFound(f"No backup named '{name}'.")
    return path


def create_backup(log: Log = lambda line: None) -> Path:
    """Write a backup of Spectr's state and return its path."""
    database_url = current_app.config["SPECTR_DATABASE_URL"]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    target = backups_folder() / f"spectr-backup-{stamp}.tar.gz"
    with tempfile.TemporaryDirectory(dir=backups_folder()) as staging_name:
        staging = Path(staging_name)
        (staging / "database").mkdir()
        dump = dump_database(database_url, staging / "database")
        log(f"Database dumped ({dialect_of(database_url)}, {dump.stat().st_size} bytes).")
        keys = _copy_keys(Path(current_app.instance_path), staging / "instance")
        log(f"Instance keys and CA copied: {', '.join(keys)}.")
        (staging / "registry").mkdir()
        _write_json(staging / "registry" / "metadata.json", _registry_metadata(log))
        _write_json(staging / "manifest.json", _manifest(database_url, dump, keys))
        _pack(staging, target)
    log(f"Backup written to {target} ({target.stat().st_size} bytes).")
    return target


def _copy_keys(instance: Path, target: Path) -> list[str]:
    copied = []
    for name in KEY_FILES:
        source = instance / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(source, target / name)
            copied.append(name)
    return copied


def _registry_metadata(log: Log) -> dict[str, Any]:
    from portal.core.errors import SpectrError
    from portal.registry import service as registries

    metadata: dict[str, Any] = {"registries": [], "spectr_catalog": None}
    for registry in registries.list_registries():
        metadata["registries"].append(
            {"name": registry.name, "kind": registry.kind, "url": registry.url,
             "username": registry.username, "config_dir": registry.config_dir,
             "storage_path": registry.storage_path}
        )  # fmt: skip
    spectr = registries.spectr_registry()
    if spectr is not None:
        try:
            metadata["spectr_catalog"] = _catalog(registries.client_for(spectr))
        except SpectrError as exc:
            log(f"Spectr's registry catalog not saved: {exc.message}")
    return metadata


def _catalog(client: Any, limit: int = 10000) -> dict[str, list[str]]:
    catalog: dict[str, list[str]] = {}
    with client:
        last = None
        while len(catalog) < limit:
            page = client.repositories(1000, last)
            for repository in page.items:
                catalog[repository] = client.all_tags(repository)
            if not page.next_last:
                break
            last = page.next_last
    return catalog


def _manifest(database_url: str, dump: Path, keys: list[str]) -> dict[str, Any]:
    revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return {
        "format": FORMAT,
        "spectr_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "database": {"dialect": dialect_of(database_url), "file": f"database/{dump.name}",
                     "alembic_revision": revision},
        "instance_files": keys,
    }  # fmt: skip


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True))


def _pack(staging: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for item in sorted(staging.iterdir()):
            archive.add(item, arcname=item.name)


def restore_backup(archive_path: Path, log: Log = lambda line: None) -> dict[str, Any]:
    """Restore a backup over the current instance: database, keys and CA."""
    database_url = current_app.config["SPECTR_DATABASE_URL"]
    with tempfile.TemporaryDirectory() as staging_name:
        staging = Path(staging_name)
        manifest = _unpack(archive_path, staging)
        dialect = manifest["database"]["dialect"]
        if dialect != dialect_of(database_url):
            raise BackupError(
                f"This backup holds a {dialect} database but Spectr is configured for "
                f"{dialect_of(database_url)}; set SPECTR_DATABASE_URL to match."
            )
        db.session.remove()
        db.engine.dispose()  # no pooled connection may hold the old database open
        restore_database(database_url, staging / manifest["database"]["file"])
        log(f"Database restored (revision {manifest['database']['alembic_revision']}).")
        restored = _restore_keys(staging / "instance", Path(current_app.instance_path))
        log(f"Instance files restored: {', '.join(restored)}.")
    if current_app.config.get("SPECTR_ENCRYPTION_KEYS"):
        log("SPECTR_ENCRYPTION_KEYS is set: the restored encryption.key is only used without it.")
    return {"manifest": manifest, "instance_files": restored}


def _unpack(archive_path: Path, staging: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            archive.extractall(staging, filter="data")  # refuses absolute paths and '..'
        manifest = json.loads((staging / "manifest.json").read_text())
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise BackupError(f"{archive_path} is not a Spectr backup: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"Backup format {manifest.get('format')} is not supported.")
    return manifest


def _restore_keys(source: Path, instance: Path) -> list[str]:
    restored = []
    for name in KEY_FILES:
        if (source / name).is_file():
            (instance / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(source / name, instance / name)
            os.chmod(instance / name, 0o600 if not name.endswith(".crt") else 0o644)
            restored.append(name)
    return restored
