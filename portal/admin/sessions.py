"""Browser sessions kept as rows, and the throttle on failed sign-ins; no Flask request in here.

A signed cookie alone cannot be taken back: a copy saved before logout would keep working. So
the cookie names a session row by a random token (stored hashed) and every request checks the
row; logout, an admin, a password change or a deactivation ends it.

The throttle counts failures per user name from one address, and per user name from anywhere
with a higher allowance (guessing from many addresses). After the free failures each key is
locked for a time that doubles with every further failure, up to a ceiling; a correct password
during the lock is refused as well, so a guesser learns nothing. There is no lock per address
alone: behind a reverse proxy every browser shares one address, and a few typos of some
users would lock out everyone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from portal.admin.models import LoginThrottle, User, UserSession
from portal.core.audit import record_audit
from portal.core.errors import NotFound
from portal.core.security import hash_token
from portal.core.timeutil import utcnow
from portal.extensions import db

# Touching last_seen_at on every request would make every page view a write.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
FREE_FAILURES_PER_USER = 5  # from one address
FREE_FAILURES_PER_USER_ANYWHERE = 50
FIRST_LOCK = timedelta(seconds=30)
LONGEST_LOCK = timedelta(minutes=15)
# Failures older than this are forgotten, so a typo a day never adds up to a lock.
FAILURE_MEMORY = timedelta(hours=1)


def start_session(user: User, address: str | None, user_agent: str | None) -> str:
    """Record a sign-in and return the token the cookie will carry."""
    token = secrets.token_urlsafe(32)
    db.session.add(
        UserSession(
            user=user,
            token_hash=hash_token(token),
            address=(address or "")[:64] or None,
            user_agent=(user_agent or "")[:255] or None,
        )
    )
    return token


def live_session(token: str) -> UserSession | None:
    """The open session this token names, touching its last-seen time now and then."""
    row = db.session.scalar(
        select(UserSession).where(
            UserSession.token_hash == hash_token(token), UserSession.ended_at.is_(None)
        )
    )
    if row is not None and utcnow() - row.last_seen_at > LAST_SEEN_RESOLUTION:
        with db.engine.begin() as conn:
            conn.execute(
                update(UserSession).where(UserSession.id == row.id).values(last_seen_at=utcnow())
            )
    return row


def end_session(token: str) -> None:
    db.session.execute(
        update(UserSession)
        .where(UserSession.token_hash == hash_token(token), UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def end_sessions_of(user: User, except_id: int | None = None) -> int:
    """End every open session of `user` (password change, deactivation, an admin's request)."""
    query = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None)
    )
    if except_id is not None:
        query = query.where(UserSession.id != except_id)
    return db.session.execute(query.values(ended_at=utcnow())).rowcount


def end_session_of(user: User, session_id: int) -> None:
    """End one of `user`'s own open sessions, by its id in the list."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != user.id or row.ended_at is not None:
        raise NotFound(f"You have no open session with id {session_id}.")
    row.ended_at = utcnow()
    record_audit("session.end", f"user:{user.username}", details={"session": session_id})
    db.session.commit()


def end_all_sessions(user: User) -> int:
    """An admin ends every session of `user` (a lost laptop, a leaving colleague)."""
    ended = end_sessions_of(user)
    record_audit("session.end_all", f"user:{user.username}", details={"ended": ended})
    db.session.commit()
    return ended


def open_sessions(user: User) -> list[UserSession]:
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        )
    )


@dataclass(frozen=True)
class Lock:
    retry_after: int  # seconds


def _keys(username: str, address: str | None) -> list[tuple[str, int]]:
    name = username[:80]
    return [
        (f"user:{name}@{address or 'unknown'}", FREE_FAILURES_PER_USER),
        (f"user:{name}", FREE_FAILURES_PER_USER_ANYWHERE),
    ]


def sign_in_lock(username: str, address: str | None) -> Lock | None:
    """The lock that refuses a sign-in now, if any."""
    now = utcnow()
    keys = [key for key, _ in _keys(username, address)]
    until = db.session.scalar(
        select(LoginThrottle.locked_until)
        .where(LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now)
        .order_by(LoginThrottle.locked_until.desc())
        .limit(1)
    )
    if until is None:
        return None
    return Lock(retry_after=max(1, int((until - now).total_seconds() + 0.999)))


def record_failure(username: str, address: str | None) -> None:
    now = utcnow()
    for key, free in _keys(username, address):
        row = db.session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failure_at=now)
            db.session.add(row)
        if now - row.last_failure_at > FAILURE_MEMORY:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        if row.failures > free:
            row.locked_until = now + _lock_length(row.failures - free)


def _lock_length(over: int) -> timedelta:
    return min(FIRST_LOCK * 2 ** min(over - 1, 16), LONGEST_LOCK)


def record_success(username: str, address: str | None) -> None:
    """A correct password clears this user's count from this address (not the one from
    anywhere, which only time clears: a guesser elsewhere is not reset by the real user)."""
    key, _ = _keys(username, address)[0]
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


def forget_old_failures(now: datetime | None = None) -> int:
    """Drop counts nobody added to for a while (called from the periodic cleanup)."""
    cutoff = (now or utcnow()) - FAILURE_MEMORY - LONGEST_LOCK
    return db.session.execute(
        delete(LoginThrottle).where(LoginThrottle.last_failure_at < cutoff)
    ).rowcount
