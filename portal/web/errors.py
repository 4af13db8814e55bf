"""Error pages for browsers (API callers get JSON from core.api_base)."""

from __future__ import annotations

from flask import current_app, g, render_template
from flask_login import current_user
from sqlalchemy.exc import DBAPIError


def render_error_page(status: int, message: str) -> str:
    _signed_in_user_or_anonymous()
    return render_template("error.html", status=status, message=message)


def _signed_in_user_or_anonymous() -> None:
    """Load the signed-in user for the page's header; when the database is what failed, render
    the page for an anonymous visitor rather than fail again inside the error handler."""
    from portal.extensions import db

    try:
        _ = current_user.is_authenticated  # flask-login loads the user from the database here
    except DBAPIError:
        db.session.rollback()
        g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]
