"""Optional TOTP (RFC 6238) second factor for local users, through pyotp; no Flask request.

Enrolling stores a new secret (encrypted) that is not yet used; the user's authenticator app
reads it from the otpauth:// link, and the first correct code turns the factor on. Turning it off
needs a current code as well, so an open session alone cannot remove it. Directory and OpenID
users get their second factor from their directory or provider.
"""

from __future__ import annotations

import pyotp

from portal.admin.models import User
from portal.core.audit import record_audit
from portal.core.errors import Conflict, Forbidden
from portal.extensions import db

ISSUER = "Spectr"
# One step of 30 s either side: a phone's clock a little off still works.
VALID_WINDOW = 1


def start_enrolment(user: User) -> str:
    """Give `user` a new, not yet active TOTP secret; returns the otpauth:// link for the app."""
    if user.source != "local":
        raise Conflict("Your second factor is managed by your directory or sign-in provider.")
    if user.totp_enabled:
        raise Conflict("Two-factor sign-in is already on; turn it off first to enrol again.")
    user.totp_secret = pyotp.random_base32()
    record_audit("user.totp.enrol", f"user:{user.username}")
    db.session.commit()
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def enrolment_link(user: User) -> str | None:
    """The otpauth:// link of an enrolment that is started but not confirmed."""
    if user.totp_enabled or not user.totp_secret:
        return None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def code_is_right(user: User, code: str) -> bool:
    """Whether `code` is the user's current code (or the one just before or after)."""
    code = "".join(code.split())
    if not user.totp_secret or not code.isdigit():
        return False
    return pyotp.TOTP(user.totp_secret).verify(code, valid_window=VALID_WINDOW)


def confirm_enrolment(user: User, code: str) -> None:
    """Turn the factor on once the app shows a correct code."""
    if not user.totp_secret or user.totp_enabled:
        raise Conflict("Start the enrolment first.")
    if not code_is_right(user, code):
        record_audit("user.totp.enable", f"user:{user.username}", "failed (wrong code)")
        db.session.commit()
        raise Forbidden(
            "The code is wrong or expired: type the code your app shows now.",
            {"code": ["wrong or expired"]},
        )
    user.totp_enabled = True
    record_audit("user.totp.enable", f"user:{user.username}")
    db.session.commit()


def disable(user: User, code: str | None, *, by_admin: bool = False) -> None:
    """Turn the factor off: the user with a current code, or an admin (a lost phone)."""
    if not by_admin and not (user.totp_enabled and code_is_right(user, code or "")):
        record_audit("user.totp.disable", f"user:{user.username}", "failed (wrong code)")
        db.session.commit()
        raise Forbidden("The code is wrong or expired.", {"code": ["wrong or expired"]})
    user.totp_enabled = False
    user.totp_secret = None
    record_audit("user.totp.disable", f"user:{user.username}", details={"by_admin": by_admin})
    db.session.commit()
