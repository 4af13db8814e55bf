"""Who may sign in, and how: local password, the directory, an OpenID provider; no Flask request.

Local users stay for the first admin and break-glass. With `sso_required` on, only local admins
may use a password kept here. Directory and OpenID users are created at their first sign-in,
take their role from their groups at every sign-in, and are deactivated when the directory
disables or removes them. Every refusal has its own `reason` in the audit record; the login page
says the same words for a wrong password and an unknown user, so it does not tell a guesser
which user names exist (the admin's test action and the audit record tell them apart).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select

from portal.admin import directory, sessions
from portal.admin.models import User
from portal.core.audit import record_audit
from portal.core.security import hash_password, verify_password
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.identity import ProjectRoles, project_roles, sync_memberships
from portal.projects.service import join_default_project
from portal.settings.service import get_setting

GENERIC = "Wrong user name or password."
# Stored as the password hash of directory and OpenID users: argon2 can never match it.
NO_LOCAL_PASSWORD = "!external"
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


class SignInRefused(Exception):
    """A refused sign-in: `reason` for the audit record, `message` for the person."""

    def __init__(self, reason: str, message: str, username: str, method: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.username = username
        self.method = method


@dataclass(frozen=True)
class ExternalIdentity:
    """A person the directory or an OpenID provider vouched for."""

    source: str  # "ldap" or "oidc"
    external_id: str
    username: str
    role: str | None
    # Roles in the projects a group/claim mapping names; None: no mapping is configured.
    projects: ProjectRoles | None = None


def sign_in_with_password(username: str, password: str) -> User:
    """The user this name and password sign in, locally or through the directory."""
    user = db.session.scalar(select(User).filter_by(username=username))
    if user is not None and user.source == "local":
        return _local(user, password)
    if get_setting("ldap_enabled"):
        return _through_directory(username, password, user)
    verify_password(_DUMMY_HASH, password)  # as long as a wrong password takes
    raise SignInRefused("unknown_user", GENERIC, username, "local")


def _local(user: User, password: str) -> User:
    if not verify_password(user.password_hash, password):
        raise SignInRefused("wrong_password", GENERIC, user.username, "local")
    if not user.active:
        raise SignInRefused("deactivated", GENERIC, user.username, "local")
    if get_setting("sso_required") and user.role != "admin":
        raise SignInRefused(
            "sso_required",
            "Sign-in with a local password is for admins only here: use the directory "
            "account or the single sign-on button.",
            user.username,
            "local",
        )
    return user


def _through_directory(username: str, password: str, user: User | None) -> User:
    config = directory.DirectoryConfig.from_settings()
    try:
        account = directory.authenticate(config, username, password)
    except directory.DirectoryError as exc:
        if exc.reason in {"disabled", "unknown_user"} and user is not None and user.active:
            deactivate_external_user(user, f"directory: {exc.reason}")
        raise SignInRefused(exc.reason, _person_message(exc), username, "ldap") from None
    mapped = project_roles(config.project_groups, account.groups, directory.normalize_dn)
    identity = ExternalIdentity("ldap", account.dn, username, account.role, mapped)
    return provision(identity)


def _person_message(exc: directory.DirectoryError) -> str:
    if exc.reason in {"wrong_password", "unknown_user", "ambiguous"}:
        return GENERIC
    if exc.reason == "disabled":
        return "This account is disabled in the directory."
    return f"The directory cannot sign you in: {exc.message}"


def provision(identity: ExternalIdentity) -> User:
    """The Spectr user of a vouched-for person: created on first sign-in, role from groups."""
    if identity.role is None:
        raise SignInRefused(
            "no_role",
            "None of your groups gives you a role in Spectr; ask an admin to map one.",
            identity.username,
            identity.source,
        )
    user = db.session.scalar(
        select(User).where(
            or_(User.external_id == identity.external_id, User.username == identity.username)
        )
    )
    if user is not None and (
        user.source != identity.source or user.external_id not in (None, identity.external_id)
    ):
        raise SignInRefused(
            "name_taken",
            f"The user name {identity.username!r} belongs to another Spectr account; ask an admin.",
            identity.username,
            identity.source,
        )
    if user is None:
        user = _create_external(identity)
    elif not user.active:
        raise SignInRefused(
            "deactivated",
            "Your Spectr account is deactivated; ask an admin.",
            identity.username,
            identity.source,
        )
    if user.role != identity.role:
        record_audit(
            "user.role.sync",
            f"user:{user.username}",
            details={"from": user.role, "to": identity.role, "source": identity.source},
        )
        user.role = identity.role
    user.username = identity.username
    user.last_login_at = utcnow()
    if identity.projects is not None:
        sync_memberships(user, identity.projects)
    return user


def _create_external(identity: ExternalIdentity) -> User:
    user = User(
        username=identity.username,
        password_hash=NO_LOCAL_PASSWORD,
        role=identity.role,
        source=identity.source,
        external_id=identity.external_id,
        webhook_secret=secrets.token_urlsafe(32),
    )
    db.session.add(user)
    db.session.flush()
    if identity.projects is None or not identity.projects.roles:
        join_default_project(user)  # a person the mapping places in projects stays there
    record_audit(
        "user.create",
        f"user:{identity.username}",
        details={"role": identity.role, "source": identity.source},
    )
    return user


def deactivate_external_user(user: User, why: str) -> None:
    """The directory disabled or removed this user: no new sign-in, no open session."""
    user.active = False
    ended = sessions.end_sessions_of(user)
    record_audit(
        "user.deactivate", f"user:{user.username}", details={"why": why, "sessions_ended": ended}
    )
    db.session.commit()


def refresh_directory_users() -> int:
    """Deactivate directory users the directory no longer has or allows; how many."""
    if not get_setting("ldap_enabled"):
        return 0
    config = directory.DirectoryConfig.from_settings()
    users = db.session.scalars(select(User).filter_by(source="ldap", active=True)).all()
    gone = 0
    for user in users:
        if user.external_id and not directory.still_enabled(config, user.external_id):
            deactivate_external_user(user, "directory: no longer enabled")
            gone += 1
    return gone


def record_refusal(refusal: SignInRefused, address: str | None) -> None:
    """Audit a refused sign-in and count it against the throttle."""
    if refusal.reason in {"wrong_password", "unknown_user", "totp_wrong"}:
        sessions.record_failure(refusal.username, address)
    record_audit(
        "session.login",
        f"user:{refusal.username}",
        f"failed ({refusal.reason.replace('_', ' ')})",
        details={"method": refusal.method, "why": refusal.message},
    )
    db.session.commit()
