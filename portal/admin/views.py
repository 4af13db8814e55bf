"""Pages for users, API tokens and the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from portal.admin import passwords, service, totp
from portal.core.audit import audit_events_query
from portal.core.errors import SpectrError
from portal.core.security import ROLES, check_role, require_principal
from portal.extensions import db
from portal.web.auth import page_role
from portal.web.forms import NO_STORE, flash_error, keep_secret, take_secret

bp = Blueprint("admin_pages", __name__, url_prefix="/admin")
AUDIT_PAGE_SIZE = 50


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
@page_role("admin")
def audit() -> Any:
    filters = {k: v for k in ("actor", "action", "target", "outcome") if (v := request.args.get(k))}
    page = min(max(request.args.get("page", 1, type=int), 1), 10**6)
    query = audit_events_query(**filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    events = db.session.scalars(
        query.limit(AUDIT_PAGE_SIZE).offset((page - 1) * AUDIT_PAGE_SIZE)
    ).all()
    pages = max(1, -(-(total or 0) // AUDIT_PAGE_SIZE))
    return render_template(
        "admin/audit.html", events=events, filters=filters, page=page, pages=pages
    )
