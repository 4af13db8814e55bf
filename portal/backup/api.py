"""REST endpoints of backups: create, list, download, delete, restore the registry. Admins only."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import send_file
from flask.views import MethodView

from portal.backup import service
from portal.core.api_base import Blueprint
from portal.core.fields import UtcDateTime
from portal.core.operations.api import create_from_request
from portal.core.operations.schemas import OperationSchema
from portal.core.security import require_role

blp = Blueprint("backups", __name__, url_prefix="/api/v1/backups", description="Backups")


class BackupSchema(ma.Schema):
    name = ma.fields.String()
    size = ma.fields.Integer()
    created_at = UtcDateTime()


class DeletedBackupSchema(ma.Schema):
    name = ma.fields.String()
    blobs_removed = ma.fields.Integer(metadata={"description": "blobs no other backup held"})
    bytes_freed = ma.fields.Integer()
    blobs_kept = ma.fields.Integer(metadata={"description": "blobs other backups still hold"})
    collection_skipped = ma.fields.String(
        metadata={"description": "why no blob was removed (a backup that cannot be read)"}
    )


@blp.route("")
class BackupCollection(MethodView):
    @require_role("admin")
    @blp.response(200, BackupSchema(many=True))
    def get(self) -> Any:
        """List backups in the instance folder, newest first."""
        return service.list_backups()

    @require_role("admin")
    @blp.response(202, OperationSchema)
    def post(self) -> Any:
        """Back up the database, keys, CA and Spectr's registry's content (an operation)."""
        return create_from_request("backup_create", {}, target="backup")


@blp.route("/<name>")
class BackupItem(MethodView):
    @require_role("admin")
    @blp.response(200, description="the backup archive (application/gzip)")
    def get(self, name: str) -> Any:
        """Download a backup (it holds the instance's keys; the registry's blobs stay beside it)."""
        return send_file(service.backup_path(name), mimetype="application/gzip", as_attachment=True)

    @require_role("admin")
    @blp.response(200, DeletedBackupSchema)
    def delete(self, name: str) -> Any:
        """Delete a backup and the registry blobs no other backup refers to."""
        return service.delete_backup(name)


@blp.route("/<name>/restore-registry")
class BackupRegistryRestore(MethodView):
    @require_role("admin")
    @blp.response(202, OperationSchema)
    def post(self, name: str) -> Any:
        """Push a backup's images and model artifacts into Spectr's registry (an operation)."""
        service.backup_path(name)  # 404 before accepting
        return create_from_request(
            "backup_restore_registry", {"name": name}, target=f"backup:{name}"
        )
