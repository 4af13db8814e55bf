"""REST endpoints of sign-in: test the directory and the OpenID provider (admin), TOTP (self)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from portal.admin import service, sign_in_checks, totp
from portal.core.api_base import Blueprint
from portal.core.security import require_principal, require_role

blp = Blueprint(
    "sign_in_api", __name__, url_prefix="/api/v1", description="Directory, SSO and TOTP sign-in"
)


class DirectoryTestSchema(ma.Schema):
    username = ma.fields.String(
        load_default=None, validate=ma.validate.Length(1, 80), metadata={"description": "Look up"}
    )
    password = ma.fields.String(
        load_default=None,
        load_only=True,
        validate=ma.validate.Length(1, 512),
        metadata={"description": "Also bind as the user (never stored or logged)"},
    )


class SignInTestSchema(ma.Schema):
    ok = ma.fields.Boolean()
    steps = ma.fields.List(ma.fields.String(), metadata={"description": "What worked, in order"})
    reason = ma.fields.String(allow_none=True, metadata={"description": "What failed, one word"})
    message = ma.fields.String(allow_none=True)
    user = ma.fields.Dict(allow_none=True, metadata={"description": "DN, groups and role found"})


class TotpCodeSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.Length(6, 10))


class TotpEnrolmentSchema(ma.Schema):
    otpauth_url = ma.fields.String(metadata={"description": "For the authenticator app; once"})


@blp.route("/sign-in/directory/test")
class DirectoryTest(MethodView):
    @require_role("admin")
    @blp.arguments(DirectoryTestSchema)
    @blp.response(200, SignInTestSchema)
    def post(self, body: dict) -> Any:
        """Test the saved directory settings: connect, TLS, service bind, and a user if named.

        Answers 200 either way; `ok` false names the step that failed in `reason` and `message`.
        """
        return sign_in_checks.check_directory(body["username"], body["password"])


@blp.route("/sign-in/sso/test")
class SsoTest(MethodView):
    @require_role("admin")
    @blp.response(200, SignInTestSchema)
    def post(self) -> Any:
        """Test the saved OpenID settings: discovery and the provider's signing keys."""
        return sign_in_checks.check_sso()


@blp.route("/me/totp")
class MyTotp(MethodView):
    @require_role("viewer")
    @blp.response(200, TotpEnrolmentSchema)
    def post(self) -> Any:
        """Start enrolling a TOTP app; confirm with a code to turn it on."""
        user = service.get_user(require_principal().user_id)
        return {"otpauth_url": totp.start_enrolment(user)}

    @require_role("viewer")
    @blp.arguments(TotpCodeSchema)
    @blp.response(204)
    def delete(self, body: dict) -> None:
        """Turn your TOTP off, giving a current code."""
        totp.disable(service.get_user(require_principal().user_id), body["code"])


@blp.route("/me/totp/confirm")
class MyTotpConfirm(MethodView):
    @require_role("viewer")
    @blp.arguments(TotpCodeSchema)
    @blp.response(204)
    def post(self, body: dict) -> None:
        """Turn TOTP on with the code the app shows now."""
        totp.confirm_enrolment(service.get_user(require_principal().user_id), body["code"])


@blp.route("/users/<id:user_id>/totp")
class UserTotp(MethodView):
    @require_role("admin")
    @blp.response(204)
    def delete(self, user_id: int) -> None:
        """Turn a user's TOTP off (a lost phone); they sign in with the password alone."""
        totp.disable(service.get_user(user_id), None, by_admin=True)
