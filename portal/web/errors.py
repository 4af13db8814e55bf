"""Error pages for browsers (API callers get JSON from core.api_base)."""

from __future__ import annotations

from flask import render_template


def render_error_page(status: int, message: str) -> str:
    return render_template("error.html", status=status, message=message)
