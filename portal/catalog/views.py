"""Pages of the catalog (filled in below)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("catalog_pages", __name__, url_prefix="/catalog", cli_group="catalog")
