"""REST endpoints of backups: create (an operation), list, download. Admins only."""

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
        """Back up the database, instance keys, CA and registry metadata (an operation)."""
        return create_from_request("backup_create", {}, target="backup")


@blp.route("/<name>")
class BackupItem(MethodView):
    @require_role("admin")
    @blp.response(200, description="the backup archive (application/gzip)")
    def get(self, name: str) -> Any:
        """Download a backup (it holds the instance's keys: keep it as safe as the server)."""
        return send_file(service.backup_path(name), mimetype="application/gzip", as_attachment=True)
