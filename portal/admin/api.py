"""REST endpoints: users (admin), the caller's own account, API tokens, the audit log."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_login import current_user

from portal.admin import passwords, service, sessions
from portal.admin.schemas import (
    AuditEventSchema,
    AuditQuerySchema,
    PasswordChangedSchema,
    PasswordChangeSchema,
    PasswordResetSchema,
    SessionSchema,
    SessionsEndedSchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
    WebhookSecretSchema,
)
from portal.core.api_base import Blueprint
from portal.core.audit import audit_events_query
from portal.core.errors import Forbidden
from portal.core.pagination import SelectPage
from portal.core.security import check_role, require_principal, require_role
from portal.projects.access import audit_scope, project_role, token_scope

blp = Blueprint("admin", __name__, url_prefix="/api/v1", description="Users, tokens and audit")


@blp.route("/users")
class Users(MethodView):
    @require_role("admin")
    @blp.response(200, UserSchema(many=True))
    def get(self) -> Any:
        """List users."""
        return service.list_users()

    @require_role("admin")
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, body: dict) -> Any:
        """Create a user."""
        return service.create_user(body["username"], body["password"], body["role"])


@blp.route("/users/<id:user_id>")
class UserItem(MethodView):
    @require_role("admin")
    @blp.response(200, UserSchema)
    def get(self, user_id: int) -> Any:
        """Show a user."""
        return service.get_user(user_id)

    @require_role("admin")
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, body: dict, user_id: int) -> Any:
        """Change a user's role, active flag or password."""
        return service.update_user(service.get_user(user_id), **body)

    @require_role("admin")
    @blp.response(204)
    def delete(self, user_id: int) -> None:
        """Delete a user."""
        user = service.get_user(user_id)
        if user.id == require_principal().user_id:
            raise Forbidden("You cannot delete your own account.")
        service.delete_user(user)


@blp.route("/users/<id:user_id>/password")
class UserPassword(MethodView):
    @require_role("admin")
    @blp.arguments(PasswordResetSchema)
    @blp.response(200, PasswordChangedSchema)
    def post(self, body: dict, user_id: int) -> Any:
        """Set a user's password without the old one; every session of that user ends."""
        user = service.get_user(user_id)
        keep = _own_session_id() if user.id == require_principal().user_id else None
        ended = passwords.reset_password(user, body["password"], keep_session_id=keep)
        return {"sessions_ended": ended}


@blp.route("/me")
class Me(MethodView):
    @require_role("viewer")
    @blp.response(200, UserSchema)
    def get(self) -> Any:
        """Show the caller's own account."""
        return service.get_user(require_principal().user_id)


@blp.route("/me/password")
class MyPassword(MethodView):
    @require_role("viewer")
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, PasswordChangedSchema)
    def post(self, body: dict) -> Any:
        """Change your password, giving the current one; your other sessions end.

        A wrong current password is a 403 naming `current_password`, and counts as a failed
        sign-in: after several, 429 with Retry-After.
        """
        user = service.get_user(require_principal().user_id)
        ended = passwords.change_own_password(
            user,
            body["current_password"],
            body["new_password"],
            session_id=_own_session_id(),
            address=request.remote_addr,
        )
        return {"sessions_ended": ended}


def _own_session_id() -> int | None:
    """The session row this request came through; None for a token (it keeps no session)."""
    if require_principal().via != "session":
        return None
    return getattr(current_user, "session_row_id", None)


@blp.route("/me/sessions")
class MySessions(MethodView):
    @require_role("viewer")
    @blp.response(200, SessionSchema(many=True))
    def get(self) -> Any:
        """List your open browser sessions, the current one marked."""
        rows = sessions.open_sessions(service.get_user(require_principal().user_id))
        current = getattr(current_user, "session_row_id", None)
        return [{**_session_fields(row), "current": row.id == current} for row in rows]


@blp.route("/me/sessions/<id:session_id>")
class MySessionItem(MethodView):
    @require_role("viewer")
    @blp.response(204)
    def delete(self, session_id: int) -> None:
        """End one of your browser sessions (its cookie stops working at once)."""
        sessions.end_session_of(service.get_user(require_principal().user_id), session_id)


@blp.route("/users/<id:user_id>/sessions")
class UserSessions(MethodView):
    @require_role("admin")
    @blp.response(200, SessionsEndedSchema)
    def delete(self, user_id: int) -> Any:
        """End every browser session of a user."""
        return {"ended": sessions.end_all_sessions(service.get_user(user_id))}


def _session_fields(row: Any) -> dict[str, Any]:
    names = ("id", "address", "user_agent", "created_at", "last_seen_at")
    return {name: getattr(row, name) for name in names}


@blp.route("/me/webhook-secret")
class MyWebhookSecret(MethodView):
    @require_role("viewer")
    @blp.response(200, WebhookSecretSchema)
    def post(self) -> Any:
        """Rotate the secret that signs your operations' callbacks; shown only here."""
        user = service.get_user(require_principal().user_id)
        return {"webhook_secret": service.rotate_webhook_secret(user)}


@blp.route("/tokens")
class Tokens(MethodView):
    @require_role("viewer")
    @blp.response(200, TokenSchema(many=True))
    def get(self) -> Any:
        """List your API tokens (admins see everyone's)."""
        principal = require_principal()
        owner = None if principal.has_role("admin") else service.get_user(principal.user_id)
        return service.list_tokens(owner)

    @require_role("viewer")
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, TokenCreatedSchema)
    def post(self, body: dict) -> Any:
        """Create an API token for yourself; the token is in this answer only."""
        user = service.get_user(require_principal().user_id)
        days = body["expires_in_days"] or current_app.config["SPECTR_TOKEN_DEFAULT_DAYS"]
        project_id, role = token_scope(body["project"], body["role"])
        token, plaintext = service.create_token(user, body["name"], days, project_id, role)
        token.token = plaintext  # a plain attribute for this answer; never stored
        return token


@blp.route("/tokens/<id:token_id>")
class TokenItem(MethodView):
    @require_role("viewer")
    @blp.response(200, TokenSchema)
    def delete(self, token_id: int) -> Any:
        """Revoke an API token (your own; admins any)."""
        token = service.get_token(token_id)
        if token.user_id != require_principal().user_id:
            check_role("admin")
        return service.revoke_token(token)


@blp.route("/audit")
class AuditLog(MethodView):
    @project_role("admin")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEventSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, filters: dict) -> Any:
        """List audit records, newest first: global admins all of them, a project admin
        those of the projects they administer."""
        return audit_events_query(within=audit_scope, **filters)
