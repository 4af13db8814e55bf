"""Schemas of users, tokens and audit records."""

from __future__ import annotations

import marshmallow as ma

from portal.admin.passwords import MAX_LENGTH, MIN_LENGTH
from portal.core.fields import UtcDateTime
from portal.core.security import ROLES


class UserSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    username = ma.fields.String()
    role = ma.fields.String()
    active = ma.fields.Boolean()
    source = ma.fields.String(
        dump_only=True, metadata={"description": "local, ldap (directory) or oidc (SSO)"}
    )
    totp_enabled = ma.fields.Boolean(dump_only=True)
    created_at = UtcDateTime()
    last_login_at = UtcDateTime(allow_none=True)


class UserCreateSchema(ma.Schema):
    username = ma.fields.String(
        required=True,
        validate=[
            ma.validate.Length(1, 80),
            ma.validate.Regexp(r"^[A-Za-z0-9_.@-]+$", error="Letters, digits and _.@- only."),
        ],
    )
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(10, 512))
    role = ma.fields.String(load_default="viewer", validate=ma.validate.OneOf(ROLES))


class UserUpdateSchema(ma.Schema):
    role = ma.fields.String(validate=ma.validate.OneOf(ROLES))
    active = ma.fields.Boolean()
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(10, 512))


def _new_password(description: str) -> ma.fields.String:
    return ma.fields.String(
        required=True,
        load_only=True,
        validate=ma.validate.Length(
            MIN_LENGTH, MAX_LENGTH, error="The password must have {min} to {max} characters."
        ),
        metadata={"description": f"{description}; not the user name"},
    )


class PasswordChangeSchema(ma.Schema):
    current_password = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(1, MAX_LENGTH)
    )
    new_password = _new_password("The new password")


class PasswordResetSchema(ma.Schema):
    password = _new_password("The user's new password")


class PasswordChangedSchema(ma.Schema):
    sessions_ended = ma.fields.Integer(
        metadata={"description": "How many of the user's browser sessions were ended"}
    )


class TokenSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String()
    owner = ma.fields.Function(lambda token: token.user.username)
    prefix = ma.fields.String()
    created_at = UtcDateTime()
    expires_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)
    last_used_at = UtcDateTime(allow_none=True)
    project_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "The one project the token reaches; null: all"}
    )
    role = ma.fields.String(
        allow_none=True, metadata={"description": "The most the token may do; null: as its owner"}
    )


class TokenCreatedSchema(TokenSchema):
    token = ma.fields.String(metadata={"description": "The token itself; shown this once only"})


class TokenCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 120))
    expires_in_days = ma.fields.Integer(
        load_default=None, allow_none=True, validate=ma.validate.Range(1, 3650)
    )
    project = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(1, 63),
        metadata={"description": "Scope the token to this project (by name)"},
    )
    role = ma.fields.String(
        load_default=None,
        validate=ma.validate.OneOf(ROLES),
        metadata={"description": "At most your own role (in the project, if one is given)"},
    )


class SessionSchema(ma.Schema):
    id = ma.fields.Integer()
    address = ma.fields.String(allow_none=True)
    user_agent = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()
    last_seen_at = UtcDateTime()
    current = ma.fields.Boolean(metadata={"description": "The session of this request"})


class SessionsEndedSchema(ma.Schema):
    ended = ma.fields.Integer(metadata={"description": "How many open sessions were ended"})


class WebhookSecretSchema(ma.Schema):
    webhook_secret = ma.fields.String()


class AuditEventSchema(ma.Schema):
    id = ma.fields.Integer()
    at = UtcDateTime()
    actor = ma.fields.String()
    action = ma.fields.String()
    target = ma.fields.String(allow_none=True)
    outcome = ma.fields.String()
    source_ip = ma.fields.String(allow_none=True)
    request_id = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    project_id = ma.fields.Integer(allow_none=True)


class AuditQuerySchema(ma.Schema):
    actor = ma.fields.String()
    action = ma.fields.String()
    target = ma.fields.String()
    outcome = ma.fields.String()
    project_id = ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1))
    since = UtcDateTime()
    until = UtcDateTime()
