"""Users and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.secrets_box import EncryptedText
from portal.core.timeutil import utcnow
from portal.extensions import db


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Signs callback POSTs for this user's operations; encrypted, shown only when rotated.
    webhook_secret: Mapped[str | None] = mapped_column(EncryptedText(512), deferred=True)
    # Bumped on password change so that older sessions stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Where the user signs in: "local" (password here), "ldap" or "oidc". A directory user's
    # password_hash is unusable; the directory or the provider decides, and its groups the role.
    source: Mapped[str] = mapped_column(String(16), default="local")
    # The LDAP entry's DN, or "<issuer>|<sub>" of an OpenID provider: names change, these don't.
    external_id: Mapped[str | None] = mapped_column(String(512), unique=True)
    # TOTP (RFC 6238) for local users: the base32 secret encrypted; on once a code was confirmed.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText(256), deferred=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete")


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A token scoped to one project acts only there, with `role` (at most its owner's there).
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str | None] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="tokens")

    def is_valid(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class UserSession(db.Model):
    """One browser sign-in. The cookie carries a random id; only its hash is stored here, so
    logging out (or an admin revoking it) ends that cookie even if someone kept a copy."""

    __tablename__ = "user_sessions"
    __table_args__ = {"sqlite_autoincrement": True}  # a session id is never handed out twice

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class LoginThrottle(db.Model):
    """Failed sign-ins counted per key (a user name from one address, or one address)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


class SignInState(db.Model):
    """One OpenID Connect sign-in started here: its `state` (hashed) and whether the provider's
    answer was already taken. The browser's cookie alone cannot show a replay: a copy of the
    cookie and the callback URL would pass again."""

    __tablename__ = "sign_in_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
