"""Create, list and delete backups under <instance>/backups (restore.py puts them back).

A backup is a tar.gz with a manifest.json: the database dump, the instance keys (encryption key,
session key) and the Spectr CA, the registry metadata, and the index of Spectr's registry's
content (every repository's tags, manifests and blobs: images and models/<name> artifacts).
The registry's blobs and manifests themselves go to the blob store beside the archives
(backups/blobs/sha256/<hex>), shared by every backup: a second backup copies only what is new.
Model files staged on the Spectr node (SPECTR_MODELS_DIR) are not copied: each model revision
is an OCI artifact in Spectr's registry, the source of truth, and comes back with it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select, text

from portal import __version__
from portal.backup import archive
from portal.backup.blobstore import BlobStore
from portal.backup.database import BackupError, dialect_of, dump_database
from portal.backup.registry_content import RegistrySaver, megabytes, referenced_digests
from portal.core.audit import record_audit
from portal.core.errors import NotFound, SpectrError
from portal.extensions import db

KEY_FILES = ("encryption.key", "secret_key", "pki/ca.crt", "pki/ca.key")
LOCK_WAIT_SECONDS = 600.0  # a backup waits for another one to finish rather than failing
Log = Callable[[str], None]
Progress = Callable[[float, str], None]


def quiet(*_: object) -> None:
    """The default log and progress: say nothing."""


def backups_folder() -> Path:
    folder = Path(current_app.instance_path) / "backups"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def blob_store(folder: Path | None = None) -> BlobStore:
    """The blob store beside the backups (or in `folder`, a copy brought to this machine)."""
    return BlobStore(folder or backups_folder() / "blobs")


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


def create_backup(log: Log = quiet, progress: Progress = quiet) -> Path:
    """Write a backup of Spectr's state and return its path.

    Raises BackupError after writing it when the registry's content could not be saved: the
    database and keys are in the archive, and the error says what is missing.
    """
    database_url = current_app.config["SPECTR_DATABASE_URL"]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    target = backups_folder() / f"spectr-backup-{stamp}.tar.gz"
    store = blob_store()
    with store.locked(LOCK_WAIT_SECONDS), tempfile.TemporaryDirectory(dir=backups_folder()) as tmp:
        staging = Path(tmp)
        dump = dump_database(database_url, _mkdir(staging / "database"))
        log(f"Database dumped ({dialect_of(database_url)}, {dump.stat().st_size} bytes).")
        keys = _copy_keys(Path(current_app.instance_path), staging / "instance")
        log(f"Instance keys and CA copied: {', '.join(keys)}.")
        archive.write_json(staging / "registry" / "metadata.json", _registry_metadata())
        content = _save_registry_content(staging, store, log, progress)
        manifest = _manifest(database_url, dump, keys, content)
        archive.write_json(staging / archive.MANIFEST, manifest)
        archive.pack(staging, target)
    log(f"Backup written to {target} ({target.stat().st_size} bytes).")
    if content and content["error"]:
        raise BackupError(
            f"Backup {target.name} holds the database and keys but not the registry's "
            f"content: {content['error']}"
        )
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _copy_keys(instance: Path, target: Path) -> list[str]:
    copied = []
    for name in KEY_FILES:
        source = instance / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(source, target / name)
            copied.append(name)
    return copied


def _registry_metadata() -> dict[str, Any]:
    from portal.registry import service as registries

    return {
        "registries": [
            {"name": r.name, "kind": r.kind, "url": r.url, "username": r.username,
             "config_dir": r.config_dir, "storage_path": r.storage_path}
            for r in registries.list_registries()
        ]
    }  # fmt: skip


def _save_registry_content(
    staging: Path, store: BlobStore, log: Log, progress: Progress
) -> dict[str, Any] | None:
    """Copy Spectr's registry into the blob store; its manifest section (None: no registry)."""
    from portal.registry import service as registries

    registry = registries.spectr_registry()
    if registry is None:
        log("No Spectr registry is recorded: no registry content to save.")
        return None
    log(f"Saving the content of Spectr's registry {registry.url} into {store.root}.")
    section: dict[str, Any] = {"registry": registry.url, "error": None, "missing": []}
    try:
        with registries.client_for(registry) as client:
            saver = RegistrySaver(client, store, log, progress)
            index = saver.save()
    except SpectrError as exc:
        log(f"The registry's content was not saved: {exc.message}")
        return {**section, "error": exc.message}
    archive.write_json(staging / archive.REGISTRY_INDEX, index)
    counts = saver.counts
    log(
        f"Registry content: {counts.repositories} repositories, {counts.tags} tags, "
        f"{counts.blobs} blobs and manifests ({megabytes(counts.bytes)}); copied "
        f"{counts.blobs_copied} ({megabytes(counts.bytes_copied)}), reused "
        f"{counts.blobs_reused} ({megabytes(counts.bytes_reused)}) from earlier backups."
    )
    return {**section, **counts.to_dict(), "missing": index["missing"],
            "models": _models_section(index)}  # fmt: skip


def _models_section(index: dict[str, Any]) -> dict[str, Any]:
    """How model files are covered: by their artifacts in the registry's content."""
    from portal.artifacts.models import ModelRevision

    revisions = list(db.session.scalars(select(ModelRevision)))
    saved = {
        (repository, item["digest"])
        for repository, content in index["repositories"].items()
        for item in content["manifests"]
    }
    missing = [f"{r.repository}@{r.manifest_digest}" for r in revisions
               if (r.repository, r.manifest_digest) not in saved]  # fmt: skip
    return {
        "stored_as": "OCI artifacts in Spectr's registry (models/<name>), saved with its content",
        "models_dir": "not copied: the Spectr node's staged files are fetched again from the "
        "registry when a model is distributed or deployed",
        "revisions": len(revisions),
        "revisions_saved": len(revisions) - len(missing),
        "revisions_missing": missing,
    }


def _manifest(
    database_url: str, dump: Path, keys: list[str], content: dict[str, Any] | None
) -> dict[str, Any]:
    revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return {
        "format": archive.FORMAT,
        "spectr_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "database": {"dialect": dialect_of(database_url), "file": f"database/{dump.name}",
                     "alembic_revision": revision},
        "instance_files": keys,
        "registry_content": content,
        "blob_store": "blobs/ beside this archive (sha256/<hex>), shared by the backups",
    }  # fmt: skip


def delete_backup(name: str) -> dict[str, Any]:
    """Delete a backup, then the blobs no remaining backup refers to."""
    path = backup_path(name)
    store = blob_store()
    with store.locked():
        path.unlink()
        collected = _collect_blobs(store)
    record_audit("backup.delete", f"backup:{name}", details=collected)
    db.session.commit()
    return {"name": name, **collected}


def prune_backups(keep: int) -> list[dict[str, Any]]:
    """Keep the newest `keep` backups; delete the others (and the blobs only they held)."""
    return [delete_backup(item["name"]) for item in list_backups()[keep:]]


def _collect_blobs(store: BlobStore) -> dict[str, Any]:
    referenced: set[str] = set()
    try:
        for item in list_backups():
            index = archive.read_member(backups_folder() / item["name"], archive.REGISTRY_INDEX)
            referenced |= referenced_digests(index or {})
    except BackupError as exc:
        # Unknown references: deleting anything could take a blob that backup needs.
        return {"blobs_removed": 0, "bytes_freed": 0, "collection_skipped": exc.message}
    collected = store.collect(referenced)
    return {"blobs_removed": collected.removed, "bytes_freed": collected.bytes_freed,
            "blobs_kept": len(referenced)}  # fmt: skip
