"""The backup archive: a tar.gz whose small members come first.

manifest.json and registry/ lead, then instance/ and database/: reading which blobs a backup
refers to (the garbage collection of the blob store does it for every backup) decompresses only
the archive's first kilobytes, never the database dump.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from portal.backup.database import BackupError

FORMAT = 2  # 2: the registry's content is in the blob store beside the backups
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
REGISTRY_INDEX = "registry/content.json"
ORDER = (MANIFEST, "registry", "instance", "database")


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=True))


def pack(staging: Path, target: Path) -> None:
    """Write the staging folder as a tar.gz readable by its owner only, small members first."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name in ORDER:
            if (staging / name).exists():
                archive.add(staging / name, arcname=name)


def unpack(archive_path: Path, staging: Path) -> dict[str, Any]:
    """Extract a backup into `staging`; return its manifest."""
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            archive.extractall(staging, filter="data")  # refuses absolute paths and '..'
        manifest = json.loads((staging / MANIFEST).read_text())
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise BackupError(f"{archive_path} is not a Spectr backup: {exc}") from exc
    _check_format(manifest)
    return manifest


def read_member(archive_path: Path, name: str) -> dict[str, Any] | None:
    """One JSON member of a backup, read by streaming up to it; None if the backup has none."""
    try:
        with tarfile.open(archive_path, "r|gz") as archive:
            for member in archive:
                if member.name == name and member.isfile():
                    handle = archive.extractfile(member)
                    return json.loads(handle.read()) if handle else None
                if member.name.startswith(("instance", "database")):
                    return None  # past the small members: it is not there
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise BackupError(f"{archive_path} is not a readable Spectr backup: {exc}") from exc
    return None


def read_manifest(archive_path: Path) -> dict[str, Any]:
    manifest = read_member(archive_path, MANIFEST)
    if manifest is None:
        raise BackupError(f"{archive_path} is not a Spectr backup: it has no {MANIFEST}.")
    _check_format(manifest)
    return manifest


def _check_format(manifest: dict[str, Any]) -> None:
    if manifest.get("format") not in READABLE_FORMATS:
        raise BackupError(f"Backup format {manifest.get('format')} is not supported.")
