"""Login, logout, the home page and the health endpoint."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from portal import __version__
from portal.admin import oidc, sessions, sign_in
from portal.admin.sign_in_views import ask_for_code, complete_sign_in
from portal.core.audit import record_audit
from portal.core.db_outage import database_unavailable
from portal.extensions import db
from portal.projects.access import caller_scope, visible_project_ids
from portal.web.auth import page_role
from portal.web.display import published_ports, when

bp = Blueprint("web", __name__)
bp.add_app_template_filter(when, "when")
bp.add_app_template_global(published_ports, "published_ports")


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for /favicon.ico on pages that name none (JSON, the API docs)."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.after_app_request
def refuse_framing(response: Response) -> Response:
    """No page of Spectr may be shown inside another site's frame (clickjacking)."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    return response


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness and database reachability, for load balancers and benchmarks."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return _login_page()
    username = request.form.get("username", "")[:80]
    address = request.remote_addr
    lock = sessions.sign_in_lock(username, address)
    if lock is not None:
        return _refuse_sign_in(username, "throttled", lock.retry_after)
    try:
        user = sign_in.sign_in_with_password(username, request.form.get("password", ""))
    except sign_in.SignInRefused as refusal:
        sign_in.record_refusal(refusal, address)
        flash(refusal.message, "error")
        return _login_page(username=username), 401
    if user.totp_enabled:
        # The failure count stays until the code is right too: each right password must not
        # buy a guesser another round of free codes.
        return ask_for_code(user, request.args.get("next"))
    sessions.record_success(username, address)
    return complete_sign_in(user, user.source, request.args.get("next"))


def _login_page(**values: Any) -> Any:
    return render_template("login.html", sso=_single_sign_on_label(), **values)


def _single_sign_on_label() -> str | None:
    """The sign-on button, or none while the database is away: the page that says so renders."""
    try:
        return oidc.button_label()
    except DBAPIError as error:
        if not database_unavailable(error):
            raise
        db.session.rollback()
        return None


def _refuse_sign_in(username: str, outcome: str, retry_after: int) -> Any:
    record_audit("session.login", f"user:{username}", outcome)
    db.session.commit()
    flash(f"Too many failed sign-ins. Try again in {retry_after} s.", "error")
    page = _login_page(username=username)
    return page, 429, {"Retry-After": str(retry_after)}


@bp.post("/logout")
def logout() -> Any:
    ending_provider_session = None
    if current_user.is_authenticated:
        sessions.end_session(current_user.session_token)
        record_audit("session.logout", f"user:{current_user.user.username}")
        db.session.commit()
        ending_provider_session = oidc.end_session_url(
            session.get(oidc.ID_TOKEN_KEY), url_for("web.login", _external=True)
        )
    logout_user()
    session.pop(oidc.ID_TOKEN_KEY, None)
    # Signed in through the OpenID provider: sign out there too, or the next click signs in again.
    return redirect(ending_provider_session or url_for("web.login"))


@bp.get("/")
@page_role("viewer")
def home() -> Any:
    from portal.monitoring.overview import fleet_overview
    from portal.monitoring.views import callers_viewer
    from portal.projects.quotas import usage_by_project

    return render_template(
        "home.html",
        overview=fleet_overview(None, callers_viewer()),
        projects=usage_by_project(visible_project_ids()),
        roles=caller_scope(),
    )
