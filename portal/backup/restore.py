"""Restore a backup: database, keys and CA, then the registry's content.

On a new machine: install Spectr with an empty database, copy the backups folder (the archive
and blobs/ beside it) over, run `spectr backup restore`; if Spectr's registry as the backup
recorded it does not answer yet, deploy it (same CA and password: they were restored) and run
`spectr backup restore-registry` (or POST /api/v1/backups/<name>/restore-registry).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import current_app

from portal.backup import archive
from portal.backup.database import BackupError, dialect_of, restore_database
from portal.backup.registry_content import RegistryRestorer, megabytes
from portal.backup.service import (
    KEY_FILES,
    LOCK_WAIT_SECONDS,
    Log,
    Progress,
    blob_store,
    quiet,
)
from portal.core.errors import SpectrError
from portal.extensions import db


def restore_backup(
    archive_path: Path,
    log: Log = quiet,
    blobs: Path | None = None,
    registry: bool = True,
) -> dict[str, Any]:
    """Restore a backup: database, keys and CA, then the registry's content (if asked).

    The registry's content goes to Spectr's registry as the restored database records it; when
    that registry does not answer yet (a new machine), the rest is restored and the result
    says so: deploy the registry, then restore its content (`restore_registry_content`).
    """
    database_url = current_app.config["SPECTR_DATABASE_URL"]
    with tempfile.TemporaryDirectory() as staging_name:
        staging = Path(staging_name)
        manifest = archive.unpack(archive_path, staging)
        _restore_database(database_url, staging, manifest, log)
        restored = _restore_keys(staging / "instance", Path(current_app.instance_path))
        log(f"Instance files restored: {', '.join(restored)}.")
    _reload_secret_box(log)
    result: dict[str, Any] = {"manifest": manifest, "instance_files": restored, "registry": None}
    if registry and manifest.get("registry_content"):
        try:
            result["registry"] = restore_registry_content(archive_path, log, blobs=blobs)
        except SpectrError as exc:
            result["registry_error"] = exc.message
            log(
                f"The registry's content was not restored: {exc.message} Once Spectr's registry "
                f"answers, run: spectr backup restore-registry {archive_path}"
            )
    return result


def _restore_database(database_url: str, staging: Path, manifest: dict[str, Any], log: Log) -> None:
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


def _restore_keys(source: Path, instance: Path) -> list[str]:
    restored = []
    for name in KEY_FILES:
        if (source / name).is_file():
            (instance / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(source / name, instance / name)
            os.chmod(instance / name, 0o600 if not name.endswith(".crt") else 0o644)
            restored.append(name)
    return restored


def _reload_secret_box(log: Log) -> None:
    # The restored encryption.key must decrypt the restored rows in this process too (the
    # registry's password, right below); a restarted portal reads it anyway.
    from portal.core.secrets_box import load_secret_box

    configured = current_app.config.get("SPECTR_ENCRYPTION_KEYS")
    current_app.extensions["spectr_secret_box"] = load_secret_box(
        current_app.instance_path, configured
    )
    if configured:
        log("SPECTR_ENCRYPTION_KEYS is set: the restored encryption.key is only used without it.")


def restore_registry_content(
    archive_path: Path, log: Log = quiet, progress: Progress = quiet, blobs: Path | None = None
) -> dict[str, Any]:
    """Push a backup's registry content into Spectr's registry: blobs, manifests, tags."""
    from portal.registry import service as registries

    index = archive.read_member(archive_path, archive.REGISTRY_INDEX)
    if index is None:
        raise BackupError(f"{archive_path.name} holds no registry content (an older backup).")
    registry = registries.require_spectr_registry()
    store = blob_store(blobs or archive_path.parent / "blobs")
    log(f"Restoring the registry's content into {registry.url} from {store.root}.")
    with store.locked(LOCK_WAIT_SECONDS), registries.client_for(registry) as client:
        counts = RegistryRestorer(client, store, log, progress).restore(index)
    log(
        f"Registry content restored: {counts.repositories} repositories, {counts.tags} tags, "
        f"{counts.manifests} manifests; {counts.blobs_uploaded} blobs uploaded "
        f"({megabytes(counts.bytes_uploaded)}), {counts.blobs_present} already there, "
        f"{counts.blobs_mounted} mounted."
    )
    return {"registry": registry.url, **counts.to_dict()}
