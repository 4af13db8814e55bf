"""Roles, password and token hashing, the caller's identity, and role checks.

Who the caller is gets decided once per request (admin.authentication puts a Principal on
`g`); endpoints only say which role they need, through `require_role`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g

from portal.core.errors import Forbidden, Unauthorized

ROLES = ("viewer", "operator", "admin")
ROLE_RANK = {name: rank for rank, name in enumerate(ROLES)}

_password_hasher = PasswordHasher()
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: int
    username: str
    role: str
    via: str  # "session", "token" or "system"
    token_id: int | None = None
    # A project-scoped token acts only in this project; `role` is then already capped to the
    # token's role, everywhere.
    project_id: int | None = None
    token_role: str | None = None
    # The user's own global role (`role` may be a token's lower one): decides "sees everything".
    user_role: str | None = None

    def has_role(self, needed: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _password_hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Check a password against its argon2 hash, in constant time."""
    try:
        return _password_hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """Make a random bearer token; its prefix makes leaked tokens easy to grep for."""
    return "spectr_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hash a high-entropy token for storage (sha256 is enough: it cannot be guessed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def sign_payload(secret: str, body: bytes) -> str:
    """HMAC-SHA256 signature of a webhook body, hex encoded."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def current_principal() -> Principal | None:
    """Return the caller of the current request, or None when anonymous."""
    return g.get("principal")


def require_principal() -> Principal:
    """Return the caller, or fail with 401 when nobody is logged in."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized(
            "Authentication required: log in or send 'Authorization: Bearer <token>'."
        )
    return principal


def lower_role(first: str, second: str) -> str:
    """The lower of two roles."""
    return first if ROLE_RANK[first] <= ROLE_RANK[second] else second


def check_role(needed: str) -> Principal:
    """Fail with 401/403 unless the caller has at least the `needed` role."""
    principal = require_principal()
    if not principal.has_role(needed):
        raise Forbidden(f"This action needs the '{needed}' role; you are '{principal.role}'.")
    return principal


def require_role(needed: str) -> Callable[[F], F]:
    """Decorate a view so that it runs only for callers with at least the `needed` role."""
    if needed not in ROLE_RANK:
        raise ValueError(f"unknown role {needed!r}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check_role(needed)
            return view(*args, **kwargs)

        wrapper.required_role = needed  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
