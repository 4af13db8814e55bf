"""Pages for users, API tokens and the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.admin import passwords, service, totp
from portal.core.audit import AuditEvent, audit_events_query
from portal.core.errors import SpectrError
from portal.core.security import ROLES, check_role, require_principal
from portal.projects.access import audit_scope
from portal.web.auth import page_project_role, page_role
from portal.web.forms import NO_STORE, flash_error, keep_secret, take_secret
from portal.web.listing import SortColumn, list_page

bp = Blueprint("admin_pages", __name__, url_prefix="/admin")
AUDIT_PAGE_SIZE = 50
AUDIT_SORTS = {
    "at": SortColumn(AuditEvent.at, descending_first=True),
    "actor": SortColumn(AuditEvent.actor),
    "action": SortColumn(AuditEvent.action),
    "target": SortColumn(AuditEvent.target),
}


@bp.get("/users")
@page_role("admin")
def users() -> Any:
    return render_template(
        "admin/users.html",
        users=service.list_users(),
        roles=ROLES,
        min_length=passwords.MIN_LENGTH,
    )


@bp.post("/users")
@page_role("admin")
def create_user() -> Any:
    form = request.form
    try:
        service.create_user(
            form.get("username", ""), form.get("password", ""), form.get("role", "viewer")
        )
        flash(f"User {form.get('username')} created.")
    except SpectrError as exc:
        flash(exc.message, "error")
    return redirect(url_for("admin_pages.users"))


@bp.post("/users/<id:user_id>")
@page_role("admin")
def update_user(user_id: int) -> Any:
    user = service.get_user(user_id)
    try:
        service.update_user(
            user, role=request.form.get("role"), active=request.form.get("active") == "on"
        )
        flash(f"User {user.username} updated.")
    except SpectrError as exc:
        flash(exc.message, "error")
    return redirect(url_for("admin_pages.users"))


@bp.post("/users/<id:user_id>/password")
@page_role("admin")
def reset_password(user_id: int) -> Any:
    user = service.get_user(user_id)
    own = user.id == require_principal().user_id
    keep = getattr(current_user, "session_row_id", None) if own else None
    try:
        ended = passwords.reset_password(
            user, request.form.get("password", ""), keep_session_id=keep
        )
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"Password of {user.username} set; {ended} of {user.username}'s sessions signed out.")
    return redirect(url_for("admin_pages.users"))


@bp.post("/users/<id:user_id>/totp/disable")
@page_role("admin")
def disable_totp(user_id: int) -> Any:
    user = service.get_user(user_id)
    totp.disable(user, None, by_admin=True)
    flash(f"Two-factor sign-in of {user.username} turned off.")
    return redirect(url_for("admin_pages.users"))


@bp.get("/tokens")
@page_role("viewer")
def tokens() -> Any:
    principal = require_principal()
    me = service.get_user(principal.user_id)
    listed = service.list_tokens(None if principal.has_role("admin") else me)
    created = take_secret("api-token")
    page = render_template(
        "admin/tokens.html", tokens=listed, new_token=created["secret"] if created else None
    )
    return page, 200, NO_STORE if created else {}


@bp.post("/tokens")
@page_role("viewer")
def create_token() -> Any:
    me = service.get_user(require_principal().user_id)
    days = (
        request.form.get("expires_in_days", type=int)
        or current_app.config["SPECTR_TOKEN_DEFAULT_DAYS"]
    )
    name = request.form.get("name", "").strip() or "unnamed"
    _, secret = service.create_token(me, name, days)
    # Post/redirect/get: reloading the page shows the list, it does not make a second token.
    keep_secret("api-token", secret=secret)
    return redirect(url_for("admin_pages.tokens"))


@bp.post("/tokens/<id:token_id>/revoke")
@page_role("viewer")
def revoke_token(token_id: int) -> Any:
    token = service.get_token(token_id)
    if token.user_id != require_principal().user_id:
        check_role("admin")
    service.revoke_token(token)
    flash(f"Token {token.name} revoked.")
    return redirect(url_for("admin_pages.tokens"))


@bp.get("/audit")
@page_project_role("admin")
def audit() -> Any:
    filters = {k: v for k in ("actor", "action", "target", "outcome") if (v := request.args.get(k))}
    listing = list_page(
        audit_events_query(within=audit_scope, **filters),
        sortable=AUDIT_SORTS,
        default_sort="at",
        tiebreak=AuditEvent.id,
        searchable=(AuditEvent.actor, AuditEvent.action, AuditEvent.target),
        filters=filters,
        page_size=AUDIT_PAGE_SIZE,
    )
    return render_template(
        "admin/audit.html", listing=listing, events=listing.items, filters=filters
    )
