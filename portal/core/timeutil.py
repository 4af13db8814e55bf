"""Time helpers: Spectr stores naive UTC timestamps (SQLite has no time zones)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current UTC time without tzinfo, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(moment: datetime | None) -> str | None:
    """Format a stored UTC timestamp as ISO 8601 with a Z suffix."""
    return None if moment is None else moment.isoformat(timespec="milliseconds") + "Z"


NANOS = 1_000_000_000


def engine_time_nanos(stamp: str | None) -> int | None:
    """Nanoseconds since the epoch of a Docker time (RFC 3339 with up to 9 decimals).

    Python's datetime stops at microseconds; log lines a microsecond apart must stay apart.
    """
    if not stamp:
        return None
    whole, dot, rest = stamp.strip().replace("Z", "+00:00").partition(".")
    fraction, zone = "", whole[19:]
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    try:
        moment = datetime.fromisoformat(whole[:19] + (zone or "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp()) * NANOS + int((fraction + "000000000")[:9])


def engine_time(stamp: str | None) -> datetime | None:
    """A Docker time as a stored (naive UTC) timestamp; None for none or Docker's year 1."""
    nanos = engine_time_nanos(stamp)
    if nanos is None or nanos <= 0:
        return None
    return datetime.fromtimestamp(nanos // 1000 / 1_000_000, UTC).replace(tzinfo=None)
