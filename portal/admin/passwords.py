"""Passwords: the policy, a user changing their own, an admin (or the command line) setting one.

Either way the user's other browser sessions end: whoever knew the old password may hold a
session made with it. A wrong current password counts as a failed sign-in, under the login
page's throttle, so a session left open on someone's desk cannot be used to guess it.
"""

from __future__ import annotations

from portal.admin import sessions
from portal.admin.models import User
from portal.core.audit import record_audit
from portal.core.errors import Conflict, Forbidden, TooManyAttempts, ValidationFailed
from portal.core.security import hash_password, verify_password
from portal.extensions import db

MIN_LENGTH = 10
# argon2 would hash a megabyte, slowly: that is an attack, not a password.
MAX_LENGTH = 512


def check_password_policy(password: str, username: str, field: str = "password") -> None:
    """Refuse a password that is too short, too long or the user's own name."""
    if len(password) < MIN_LENGTH:
        refusal = f"The password must have at least {MIN_LENGTH} characters."
    elif len(password) > MAX_LENGTH:
        refusal = f"The password must have at most {MAX_LENGTH} characters."
    elif password.strip().lower() == username.lower():
        refusal = "The password must not be the user name."
    else:
        return
    raise ValidationFailed(refusal, {field: [refusal]})


def replace_password(user: User, password: str, keep_session_id: int | None = None) -> int:
    """Store a new password hash and end the user's sessions but one; return how many ended."""
    if user.source != "local":
        raise Conflict(
            f"{user.username} signs in through the {'directory' if user.source == 'ldap' else 'OpenID provider'}"
            ", which keeps the password; change it there."
        )
    user.password_hash = hash_password(password)
    user.session_version += 1
    return sessions.end_sessions_of(user, except_id=keep_session_id)


def change_own_password(
    user: User, current: str, new: str, *, session_id: int | None, address: str | None
) -> int:
    """The user sets a new password, proving the current one; returns the sessions ended.

    The session the change comes from (`session_id`) stays open; every other one ends.
    """
    if user.source != "local":
        replace_password(user, new)  # refuses: the directory or provider keeps the password
    lock = sessions.sign_in_lock(user.username, address)
    if lock is not None:
        raise TooManyAttempts(
            f"Too many wrong passwords. Try again in {lock.retry_after} s.", lock.retry_after
        )
    if not verify_password(user.password_hash, current):
        sessions.record_failure(user.username, address)
        record_audit("user.password.change", f"user:{user.username}", "failed (wrong password)")
        db.session.commit()  # the failure counts even though the request is refused
        refusal = "The current password is wrong."
        raise Forbidden(refusal, {"current_password": [refusal]})
    check_password_policy(new, user.username, "new_password")
    if new == current:
        refusal = "The new password is the same as the current one."
        raise ValidationFailed(refusal, {"new_password": [refusal]})
    ended = replace_password(user, new, keep_session_id=session_id)
    record_audit("user.password.change", f"user:{user.username}", details={"sessions_ended": ended})
    db.session.commit()
    return ended


def reset_password(
    user: User, password: str, *, keep_session_id: int | None = None, via: str | None = None
) -> int:
    """Set a user's password without the old one (an admin, the command line); returns the
    sessions ended. `keep_session_id` is the caller's own session, when it resets itself."""
    check_password_policy(password, user.username)
    ended = replace_password(user, password, keep_session_id=keep_session_id)
    details: dict[str, object] = {"sessions_ended": ended}
    if via:
        details["via"] = via
    record_audit("user.password.reset", f"user:{user.username}", details=details)
    db.session.commit()
    return ended
