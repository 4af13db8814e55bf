"""REST endpoints of settings: everyone may read, admins change."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.security import require_principal, require_role
from portal.settings import service
from portal.settings.schemas import SettingSchema, SettingsPatchSchema

blp = Blueprint("settings", __name__, url_prefix="/api/v1/settings", description="Settings")


@blp.route("")
class Settings(MethodView):
    @require_role("viewer")
    @blp.response(200, SettingSchema(many=True))
    def get(self) -> Any:
        """List settings with their values (secrets only say whether they are set)."""
        return service.describe_settings()

    @require_role("admin")
    @blp.arguments(SettingsPatchSchema)
    @blp.response(200, SettingSchema(many=True))
    def patch(self, body: dict) -> Any:
        """Change one or more settings."""
        return service.update_settings(body, require_principal().username)
