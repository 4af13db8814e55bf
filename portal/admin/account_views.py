"""The Account page: who you are, your open sessions, and changing your own password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.admin import passwords, service, sessions, totp
from portal.core.errors import SpectrError
from portal.core.security import require_principal
from portal.web.auth import page_role
from portal.web.forms import flash_error

bp = Blueprint("account_pages", __name__, url_prefix="/account")


@bp.get("")
@page_role("viewer")
def account() -> Any:
    user = service.get_user(require_principal().user_id)
    return render_template(
        "admin/account.html",
        user=user,
        sessions=sessions.open_sessions(user),
        current_session=_own_session_id(),
        min_length=passwords.MIN_LENGTH,
        totp_link=totp.enrolment_link(user),
    )


@bp.post("/password")
@page_role("viewer")
def change_password() -> Any:
    user = service.get_user(require_principal().user_id)
    form = request.form
    new = form.get("new_password", "")
    if new != form.get("repeat_password", ""):
        flash("The two new passwords differ: type the same one twice.", "error")
        return redirect(url_for("account_pages.account"))
    try:
        ended = passwords.change_own_password(
            user,
            form.get("current_password", ""),
            new,
            session_id=_own_session_id(),
            address=request.remote_addr,
        )
    except SpectrError as exc:
        flash_error(exc)
    else:
        others = f"{ended} other session{'s' if ended != 1 else ''}"
        flash(f"Password changed. {others} signed out; this one stays signed in.")
    return redirect(url_for("account_pages.account"))


def _own_session_id() -> int | None:
    return getattr(current_user, "session_row_id", None)


@bp.post("/sessions/<id:session_id>/end")
@page_role("viewer")
def end_session(session_id: int) -> Any:
    user = service.get_user(require_principal().user_id)
    try:
        sessions.end_session_of(user, session_id)
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash("Session signed out.")
    return redirect(url_for("account_pages.account"))


@bp.post("/totp")
@page_role("viewer")
def totp_action() -> Any:
    """Start, confirm or turn off the user's TOTP (`action` says which)."""
    user = service.get_user(require_principal().user_id)
    action, code = request.form.get("action"), request.form.get("code", "")
    try:
        if action == "start":
            totp.start_enrolment(user)
        elif action == "confirm":
            totp.confirm_enrolment(user, code)
            flash("Two-factor sign-in is on: sign-ins now ask for a code.")
        elif action == "disable":
            totp.disable(user, code)
            flash("Two-factor sign-in is off.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("account_pages.account") + "#two-factor")
