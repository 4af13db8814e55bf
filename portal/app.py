"""The application factory: load config, initialise extensions, register contexts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from portal import __version__
from portal.admin.authentication import init_authentication
from portal.config import load_config
from portal.contexts import register_contexts
from portal.core.audit import init_audit
from portal.core.column_limits import init_column_limits
from portal.core.converters import DatabaseIdConverter
from portal.core.db_outage import init_db_outage_handling
from portal.core.logging import configure_logging
from portal.core.request_input import init_request_input
from portal.core.secrets_box import load_secret_box
from portal.extensions import api, db, migrate, queue

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the Spectr portal application."""
    app = Flask(__name__, instance_path=instance_path(test_config))
    app.url_map.converters["id"] = DatabaseIdConverter
    load_config(app, test_config)
    _openapi_config(app)
    configure_logging(app)
    db.init_app(app)
    init_db_outage_handling(app)
    init_column_limits()
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    app.extensions["spectr_secret_box"] = load_secret_box(
        app.instance_path, app.config.get("SPECTR_ENCRYPTION_KEYS")
    )
    queue.init_app(app)
    api.init_app(app)
    init_request_input(app)
    init_authentication(app)
    init_audit(app)
    register_contexts(app, api)
    return app


def instance_path(test_config: dict[str, Any] | None = None) -> str:
    """The instance folder: SPECTR_INSTANCE_PATH, else ./instance (nothing is created here)."""
    configured = (test_config or {}).get("SPECTR_INSTANCE_PATH") or os.environ.get(
        "SPECTR_INSTANCE_PATH"
    )
    return str(Path(configured or Path.cwd() / "instance").resolve())


def _openapi_config(app: Flask) -> None:
    app.config.update(
        API_TITLE="Spectr",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/static/vendor/swagger-ui/",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API token: the Tokens page, POST /api/v1/tokens "
                        "or `spectr token create NAME`.",
                    },
                    "sessionCookie": {
                        "type": "apiKey",
                        "in": "cookie",
                        "name": "session",
                        "description": "The portal's sign-in session of this browser; "
                        "mutating calls also send its CSRF token as X-CSRFToken (these docs "
                        "do that themselves).",
                    },
                }
            },
            "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        },
    )
