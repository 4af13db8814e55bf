"""Users, passwords, roles and API tokens; no Flask request in here."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select

from portal.admin import passwords, sessions
from portal.admin.models import ApiToken, User
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, ValidationFailed
from portal.core.security import (
    ROLES,
    Principal,
    hash_password,
    hash_token,
    lower_role,
    new_api_token,
    verify_password,
)
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.service import join_default_project

# Verifying against a throwaway hash keeps the time of a login with an unknown user name
# close to that of a wrong password, so timing does not reveal which user names exist.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def create_user(username: str, password: str, role: str = "viewer") -> User:
    """Create a user with an argon2-hashed password."""
    _check_role(role)
    passwords.check_password_policy(password, username)
    if db.session.scalar(select(User).filter_by(username=username)):
        raise Conflict(f"A user named '{username}' already exists.", {"username": ["taken"]})
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        webhook_secret=secrets.token_urlsafe(32),
    )
    db.session.add(user)
    db.session.flush()
    join_default_project(user)
    record_audit("user.create", f"user:{username}", details={"role": role})
    db.session.commit()
    return user


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def get_user_by_name(username: str) -> User:
    user = db.session.scalar(select(User).filter_by(username=username))
    if user is None:
        raise NotFound(f"No user named '{username}'.")
    return user


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def update_user(
    user: User, *, role: str | None = None, active: bool | None = None, password: str | None = None
) -> User:
    """Change a user's role, active flag or password."""
    changes: dict[str, object] = {}
    if role is not None and role != user.role:
        _check_role(role)
        _keep_an_admin(user, "take the admin role from")
        changes["role"] = role
        user.role = role
    if active is not None and active != user.active:
        if not active:
            _keep_an_admin(user, "deactivate")
            sessions.end_sessions_of(user)
        changes["active"] = active
        user.active = active
    if password is not None:
        passwords.check_password_policy(password, user.username)
        passwords.replace_password(user, password)
        changes["password"] = "changed"
    record_audit("user.update", f"user:{user.username}", details=changes)
    db.session.commit()
    return user


def _keep_an_admin(user: User, action: str) -> None:
    """Refuse a change that would leave no active admin: nobody could administer Spectr."""
    if user.role != "admin" or not user.active:
        return
    others = db.session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict(
            f"Cannot {action} '{user.username}': it is the last active admin. "
            "Make another user admin first."
        )


def delete_user(user: User) -> None:
    _keep_an_admin(user, "delete")
    record_audit("user.delete", f"user:{user.username}")
    db.session.delete(user)
    db.session.commit()


def authenticate_password(username: str, password: str) -> User | None:
    """Return the active user with this name and password, or None."""
    user = db.session.scalar(select(User).filter_by(username=username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not user.active or not verify_password(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    return user


def create_token(
    user: User,
    name: str,
    expires_in_days: int | None,
    project_id: int | None = None,
    role: str | None = None,
) -> tuple[ApiToken, str]:
    """Create an API token, optionally scoped to one project and a role (the caller checked
    both against the owner's); the plaintext is returned here once and never stored."""
    plaintext = new_api_token()
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken(
        user=user,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:12],
        expires_at=expires_at,
        project_id=project_id,
        role=role,
    )
    db.session.add(token)
    db.session.flush()
    record_audit(
        "token.create",
        f"token:{token.id}",
        details={"owner": user.username, "name": name, "role": role},
        project_id=project_id,
    )
    db.session.commit()
    return token, plaintext


def list_tokens(user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))


def get_token(token_id: int) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    return token


def revoke_token(token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    record_audit("token.revoke", f"token:{token.id}", details={"owner": token.user.username})
    db.session.commit()
    return token


def principal_for_token(plaintext: str, now: datetime | None = None) -> Principal | None:
    """Resolve a bearer token to its user, if the token is valid and the user active."""
    now = now or utcnow()
    row = db.session.execute(
        select(ApiToken, User)
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(plaintext))
    ).first()
    if row is None:
        return None
    token, user = row
    if not token.is_valid(now) or not user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now  # written at most once a minute: no write per request
        db.session.commit()
    role = lower_role(user.role, token.role) if token.role else user.role
    if token.project_id is not None:  # a project's token is no global admin
        role = lower_role(role, "operator")
    return Principal(
        user.id, user.username, role, "token", token.id, token.project_id, token.role, user.role
    )


def rotate_webhook_secret(user: User) -> str:
    """Give the user a new callback-signing secret and return it (shown once)."""
    user.webhook_secret = secrets.token_urlsafe(32)
    record_audit("user.webhook_secret.rotate", f"user:{user.username}")
    db.session.commit()
    return user.webhook_secret


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(
            f"Unknown role '{role}'; use one of {', '.join(ROLES)}.", {"role": ["unknown role"]}
        )
