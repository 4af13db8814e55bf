"""Operation kinds of the backup context."""

from __future__ import annotations

from typing import Any

from portal.backup import archive, restore, service
from portal.backup.blobstore import BlobStoreBusy
from portal.backup.database import BackupError
from portal.core.errors import SpectrError
from portal.core.operations.kinds import (
    OperationContext,
    PermanentError,
    TransientError,
    operation_kind,
)


@operation_kind("backup_create")
def run_backup_create(ctx: OperationContext) -> dict[str, Any]:
    """Back up Spectr's state into a tar.gz, and the registry's content into the blob store."""
    ctx.progress(0.05, "dumping the database")
    try:
        path = service.create_backup(log=ctx.log, progress=_scaled(ctx, 0.1, 0.95))
    except BlobStoreBusy as exc:
        raise TransientError(exc.message) from exc  # another backup or deletion: wait for it
    except BackupError as exc:
        raise PermanentError(exc.message) from exc
    content = archive.read_manifest(path).get("registry_content") or {}
    counted = ("blobs", "bytes", "blobs_copied", "bytes_copied", "blobs_reused", "bytes_reused")
    return {"name": path.name, "path": str(path), "size": path.stat().st_size,
            "registry": {key: content[key] for key in counted if key in content}}  # fmt: skip


@operation_kind("backup_restore_registry")
def run_backup_restore_registry(ctx: OperationContext) -> dict[str, Any]:
    """Push a backup's registry content (images, model artifacts) into Spectr's registry."""
    path = service.backup_path(ctx.params["name"])
    try:
        return restore.restore_registry_content(path, ctx.log, _scaled(ctx, 0.05, 0.95))
    except SpectrError as exc:
        # A registry restarting or read-only answers again soon; anything else will not.
        error = TransientError if getattr(exc, "transient", False) else PermanentError
        raise error(exc.message) from exc


def _scaled(ctx: OperationContext, start: float, end: float) -> Any:
    def progress(fraction: float, message: str) -> None:
        ctx.progress(start + (end - start) * fraction, message)

    return progress
