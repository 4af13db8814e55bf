"""Time helpers: Spectr stores naive UTC timestamps (SQLite has no time zones)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current UTC time without tzinfo, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(moment: datetime | None) -> str | None:
    """Format a stored UTC timestamp as ISO 8601 with a Z suffix."""
    return None if moment is None else moment.isoformat(timespec="milliseconds") + "Z"
