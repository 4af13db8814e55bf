"""Decide who the caller is, once per request: bearer token or login session.

Sessions are flask-login's; the id in the cookie names a row of user_sessions (see
portal.admin.sessions), so logging out, a password change or an admin ends a session for good.
Browser sessions must send a CSRF token with every mutating
request; bearer-token clients do not, since browsers never attach tokens by themselves.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request
from flask_login import current_user

from portal.admin import service, sessions
from portal.admin.models import User
from portal.core.errors import Unauthorized
from portal.core.security import Principal
from portal.extensions import csrf, login_manager

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@login_manager.user_loader
def load_user(session_id: str) -> LoginUser | None:
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token:
        return None  # also a cookie from before sessions were rows: sign in again
    row = sessions.live_session(token)
    if row is None or row.user_id != int(user_id) or not row.user.active:
        return None
    return LoginUser(row.user, token, row.id)


class LoginUser:
    """flask-login's view of a Spectr user signed in through one session row."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user: User, session_token: str, session_row_id: int | None = None) -> None:
        self.user = user
        self.session_token = session_token
        self.session_row_id = session_row_id

    def get_id(self) -> str:
        return f"{self.user.id}:{self.session_token}"


def identify_caller() -> None:
    """Put the request id and the authenticated Principal (or None) on `g`."""
    # An app context can outlive one request (tests, CLI); start each request afresh.
    g.pop("_login_user", None)
    g.audited = False
    for name in (
        "project_id",
        "project_scope",
        "acted_projects",
        "project_names",
        "default_project_id",
    ):
        g.pop(name, None)  # portal.projects.access: what this request may see and acted in
    g.request_id = _request_id(request.headers.get("X-Request-ID"))
    g.principal = None
    header = request.headers.get("Authorization", "")
    if header:
        g.principal = _principal_from_header(header)
        return
    if current_user.is_authenticated:
        user = current_user.user
        g.principal = Principal(user.id, user.username, user.role, "session", user_role=user.role)
        if request.method in MUTATING and not _csrf_exempt():
            csrf.protect()


def _request_id(offered: str | None) -> str:
    """Carry a caller's request id through logs only if it is a short plain token."""
    if offered and REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def _principal_from_header(header: str) -> Principal:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'.")
    principal = service.principal_for_token(token.strip())
    if principal is None:
        raise Unauthorized("The API token is invalid, expired or revoked.")
    return principal


def _csrf_exempt() -> bool:
    return request.endpoint in {"web.login"}


def add_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-ID"] = g.request_id
    return response


def init_authentication(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "web.login"
    csrf.init_app(app)
    app.before_request(identify_caller)
    app.after_request(add_request_id)
