"""Operation kind of the backup context."""

from __future__ import annotations

from typing import Any

from portal.backup import service
from portal.backup.database import BackupError
from portal.core.operations.kinds import OperationContext, PermanentError, operation_kind


@operation_kind("backup_create")
def run_backup_create(ctx: OperationContext) -> dict[str, Any]:
    """Back up Spectr's state into a tar.gz under the instance folder."""
    ctx.progress(0.05, "dumping the database")
    try:
        path = service.create_backup(log=ctx.log)
    except BackupError as exc:
        raise PermanentError(exc.message) from exc
    return {"name": path.name, "path": str(path), "size": path.stat().st_size}
