"""The Sign-in page (admins): directory and OpenID settings, and their test actions.

The settings live in the settings table like every other (secrets encrypted); this page exists
because a CA certificate needs a text area and a test needs its steps shown next to the form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.admin import sign_in_checks
from portal.core.errors import SpectrError
from portal.core.security import require_principal
from portal.settings import service as settings_service
from portal.settings.registry import SETTINGS
from portal.web.auth import page_role
from portal.web.forms import flash_error

bp = Blueprint("sign_in_admin", __name__, url_prefix="/admin/sign-in")
GROUPS = ("sso", "ldap", "oidc")


def sign_in_settings() -> dict[str, dict[str, Any]]:
    """The sign-in settings by name, as the settings service describes them."""
    return {s["name"]: s for s in settings_service.describe_settings() if s["group"] in GROUPS}


@bp.get("")
@page_role("admin")
def index(result: dict[str, Any] | None = None, tested: str | None = None) -> Any:
    return render_template(
        "admin/sign_in.html",
        settings=sign_in_settings(),
        result=result,
        tested=tested,
        callback_url=url_for("sign_in.sso_callback", _external=True),
        logout_url=url_for("web.login", _external=True),
    )


@bp.post("")
@page_role("admin")
def update() -> Any:
    try:
        settings_service.update_settings(_changes(request.form), require_principal().username)
    except SpectrError as exc:
        flash_error(exc)
        return index(), 422
    flash("Sign-in settings saved.")
    return redirect(url_for("sign_in_admin.index"))


@bp.post("/test-directory")
@page_role("admin")
def test_directory() -> Any:
    form = request.form
    result = sign_in_checks.check_directory(
        form.get("username") or None, form.get("password") or None
    )
    return index(result=result, tested="directory")


@bp.post("/test-sso")
@page_role("admin")
def test_sso() -> Any:
    return index(result=sign_in_checks.check_sso(), tested="sso")


def _changes(form: Any) -> dict[str, Any]:
    """Form text to typed values; an empty secret keeps the stored one, checkboxes may be off."""
    changes: dict[str, Any] = {}
    for name, definition in SETTINGS.items():
        if definition.group not in GROUPS:
            continue
        if definition.type_name == "boolean":
            changes[name] = form.get(name) == "on"
        elif name in form and not (definition.secret and form[name] == ""):
            changes[name] = form[name].replace("\r\n", "\n")
    return changes
