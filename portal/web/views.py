"""Login, logout, the home page and the health endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import text

from portal import __version__
from portal.admin import service as admin_service
from portal.admin import sessions
from portal.admin.authentication import LoginUser
from portal.core.audit import record_audit
from portal.extensions import db
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
        return render_template("login.html")
    username = request.form.get("username", "")[:80]
    address = request.remote_addr
    lock = sessions.sign_in_lock(username, address)
    if lock is not None:
        return _refuse_sign_in(username, "throttled", lock.retry_after)
    user = admin_service.authenticate_password(username, request.form.get("password", ""))
    if user is None:
        sessions.record_failure(username, address)
        return _refuse_sign_in(username, "failed")
    sessions.record_success(username, address)
    token = sessions.start_session(user, address, request.user_agent.string)
    login_user(LoginUser(user, token))
    record_audit("session.login", f"user:{username}")
    db.session.commit()
    return redirect(_safe_next(request.args.get("next")))


def _refuse_sign_in(username: str, outcome: str, retry_after: int | None = None) -> Any:
    record_audit("session.login", f"user:{username}", outcome)
    db.session.commit()
    if retry_after is None:
        flash("Wrong user name or password.", "error")
        return render_template("login.html", username=username), 401
    flash(f"Too many failed sign-ins. Try again in {retry_after} s.", "error")
    page = render_template("login.html", username=username)
    return page, 429, {"Retry-After": str(retry_after)}


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        sessions.end_session(current_user.session_token)
        record_audit("session.logout", f"user:{current_user.user.username}")
        db.session.commit()
    logout_user()
    return redirect(url_for("web.login"))


@bp.get("/")
@page_role("viewer")
def home() -> Any:
    from portal.monitoring.overview import fleet_overview

    return render_template("home.html", overview=fleet_overview())


def _safe_next(target: str | None) -> str:
    """Follow only a path on this site; anything a browser could read as another site goes home."""
    if not target:
        return url_for("web.home")
    # Browsers drop tabs, newlines (all control characters here) and read backslashes as slashes.
    cleaned = "".join(c for c in target if c >= " ").replace("\\", "/")
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc or not cleaned.startswith("/") or cleaned.startswith("//"):
        return url_for("web.home")
    return cleaned
