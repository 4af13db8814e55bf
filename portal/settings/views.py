"""The settings page: everyone reads, admins change."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.core.errors import SpectrError
from portal.core.security import require_principal
from portal.settings import service
from portal.settings.registry import SETTINGS
from portal.web.auth import page_role
from portal.web.forms import flash_error

bp = Blueprint("settings_pages", __name__, url_prefix="/settings")
SIGN_IN_GROUPS = ("sso", "ldap", "oidc")


@bp.get("")
@page_role("viewer")
def index() -> Any:
    return render_template(
        "settings/index.html", settings=_general_settings(), typed=None, invalid=()
    )


def _general_settings() -> list[dict[str, Any]]:
    """Sign-in settings have their own page (a CA certificate needs a text area)."""
    return [s for s in service.describe_settings() if s["group"] not in SIGN_IN_GROUPS]


@bp.post("")
@page_role("admin")
def update() -> Any:
    changes = _changes_from_form(request.form)
    try:
        service.update_settings(changes, require_principal().username)
    except SpectrError as exc:
        flash_error(exc)
        # Shown again with what was typed (secrets aside), so one wrong value loses nothing.
        page = render_template(
            "settings/index.html",
            settings=_general_settings(),
            typed=request.form,
            invalid=set(exc.details),
        )
        return page, 422
    flash("Settings saved.")
    return redirect(url_for("settings_pages.index"))


def _changes_from_form(form: Any) -> dict[str, Any]:
    """Form fields are text: turn them into the types the definitions expect."""
    changes: dict[str, Any] = {}
    for name, definition in SETTINGS.items():
        if name not in form:
            continue
        raw = form[name]
        if definition.secret and raw == "":
            continue  # an empty secret field means "keep the stored secret"
        if definition.type_name == "boolean":
            changes[name] = raw == "on"
        elif raw == "" and definition.default is None:
            changes[name] = None
        else:
            changes[name] = raw
    return changes
