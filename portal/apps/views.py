"""Pages of applications (filled in below)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("apps_pages", __name__, url_prefix="/apps")
