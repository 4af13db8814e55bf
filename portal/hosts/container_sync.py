"""The containers a sweep saw, kept as HostContainer rows: inserted, updated, deleted.

Engines list containers with a human status ("Up 5 minutes (healthy)", "Exited (1) 2 seconds
ago") rather than numbers; health, exit code and when the current run started are read from
it where the list gives nothing better. The start time is what tells a container that runs
steadily from one caught up between two crashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from portal.core.bulk import insert_rows
from portal.core.timeutil import engine_time
from portal.engines import ContainerInfo
from portal.extensions import db
from portal.hosts.models import Host, HostContainer

_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")
_IN_STATE_FOR = re.compile(
    r"^(?:Up|Exited \(-?\d+\)) "
    r"(?:(Less than a second)|(About an?|\d+) (second|minute|hour|day|week|month|year)s?)"
)
# Docker's go-units HumanDuration words the time in one unit, rounded down ("2 minutes" is
# 120 to 179 s); these are the units' lengths.
_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
# Start times within this of the stored one are the same run (clocks, rounding).
SAME_RUN_SLACK = timedelta(seconds=2)
COLUMNS = ("name", "image", "state", "health", "exit_code", "restart_count", "labels", "ports",
           "started_at")  # fmt: skip


def health_of(info: ContainerInfo) -> str | None:
    """healthy, unhealthy or starting; None for a container without a health check."""
    if info.health:
        return info.health
    match = _HEALTH_IN_STATUS.search(info.status or "")
    return match.group(1).replace("health: ", "") if match else None


def exit_code_of(info: ContainerInfo) -> int | None:
    """The exit code of a stopped container, from inspect or the list's status."""
    if info.exit_code is not None:
        return info.exit_code
    match = _EXIT_CODE.match(info.status or "")
    return int(match.group(1)) if match else None


def state_age_bounds(status: str | None) -> tuple[float, float] | None:
    """The shortest and longest time a container's status says it has been up (or exited)."""
    match = _IN_STATE_FOR.match(status or "")
    if match is None:
        return None
    if match.group(1):
        return 0.0, 1.0
    count, unit = match.group(2), _UNITS[match.group(3)]
    if count.startswith("About"):
        return float(unit), 2.0 * unit  # "About a minute" is 60-119 s, "About an hour" 60-89 min
    # hours and longer are rounded to the nearest hour before they are written
    rounding = 1800.0 if unit >= 3600 else 0.0
    return float(count) * unit - rounding, (float(count) + 1) * unit


def started_at(info: ContainerInfo, stored: datetime | None, seen_at: datetime) -> datetime | None:
    """When the container's current run started; the stored time while it is the same run."""
    if info.state != "running":
        return None
    exact = engine_time(info.started_at)
    if exact is not None:
        return exact
    bounds = state_age_bounds(info.status)
    if bounds is None:
        return stored or seen_at
    shortest, longest = (timedelta(seconds=s) for s in bounds)
    same_run = seen_at - longest - SAME_RUN_SLACK, seen_at - shortest + SAME_RUN_SLACK
    if stored is not None and same_run[0] <= stored <= same_run[1]:
        return stored
    return seen_at - shortest  # the latest it can have started: never steadier than it is


def published_ports(info: ContainerInfo) -> list[dict[str, Any]]:
    """The ports published on the host, once each (engines list IPv4 and IPv6 bindings)."""
    ports: dict[tuple[int, str, int], dict[str, Any]] = {}
    for port in info.ports:
        if port.host_port:
            key = (port.container_port, port.protocol, int(port.host_port))
            if key not in ports or ports[key]["host_ip"] in ("::", "[::]"):
                ports[key] = asdict(port)
    return [ports[key] for key in sorted(ports)]


def row_values(info: ContainerInfo, stored: datetime | None, seen_at: datetime) -> dict[str, Any]:
    """The HostContainer columns for a container as the sweep saw it."""
    return {
        "name": info.name,
        "image": info.image or "",
        "state": info.state or "unknown",
        "health": health_of(info),
        "exit_code": exit_code_of(info),
        "restart_count": info.restart_count,
        "labels": info.labels,
        "ports": published_ports(info),
        "started_at": started_at(info, stored, seen_at),
    }


def sync_containers(
    seen: Iterable[tuple[int, list[ContainerInfo]]],
    seen_at: datetime,
    digests: dict[int, str | None] | None = None,
) -> list[int]:
    """Insert new containers, update changed ones, delete the ones that are gone; return the
    hosts whose containers changed.

    Each host keeps a digest of its listing as last stored (`digests`, from Host rows); a host
    whose listing has the same digest is skipped without reading its rows, so a sweep where
    nothing changed reads and writes no container rows at all. `seen_at` is when the
    containers were listed, not when they are written: a status read from the engine after
    that (an application's refresh) stays newer than these rows.
    """
    listings: dict[int, list[ContainerInfo]] = {}
    new_digests: dict[str, list[int]] = {}
    for host_id, containers in seen:
        digest = listing_digest(containers)
        if digests is None or digest != digests.get(host_id):
            listings[host_id] = containers
            new_digests.setdefault(digest, []).append(host_id)
    if not listings:
        return []
    columns = [getattr(HostContainer, name) for name in COLUMNS]
    query = select(HostContainer.id, HostContainer.host_id, HostContainer.container_id, *columns)
    known: dict[tuple[int, str], Any] = {}
    for chunk in chunks(list(listings)):
        for row in db.session.execute(query.where(HostContainer.host_id.in_(chunk))):
            known[(row.host_id, row.container_id)] = row
    inserts, updates = [], []
    for host_id, containers in listings.items():
        for info in containers:
            row = known.pop((host_id, info.id), None)
            values = row_values(info, row.started_at if row else None, seen_at)
            if row is None:
                inserts.append(
                    {"host_id": host_id, "container_id": info.id, **values, "updated_at": seen_at}
                )
            elif any(getattr(row, name) != values[name] for name in COLUMNS):
                updates.append({"id": row.id, **values, "updated_at": seen_at})
    # A first sweep finds every container: 100,000 rows at 10,000 hosts (COPY on Postgres).
    insert_rows(db.session.connection(), HostContainer.__table__, inserts)
    if updates:
        db.session.execute(update(HostContainer), updates)
    for chunk in chunks([row.id for row in known.values()]):
        db.session.execute(delete(HostContainer).where(HostContainer.id.in_(chunk)))
    for digest, host_ids in new_digests.items():  # hosts listing the same containers share one
        for chunk in chunks(host_ids):
            db.session.execute(
                update(Host).where(Host.id.in_(chunk)).values(containers_digest=digest),
                execution_options={"synchronize_session": False},
            )
    return list(listings)


def listing_digest(containers: list[ContainerInfo]) -> str:
    """A short fingerprint of a host's containers: what the stored columns are made of.

    The human status ("Up 5 minutes") is left out, as it changes every minute without anything
    happening; the start of a run is in it where the engine gives it exactly, and otherwise
    whether the run is in its first minute (a restart between two sweeps turns that on). repr() in the
    engine's order: ten times cheaper than sorted JSON, and an engine that lists the same
    containers in another order only costs one comparison of the rows.
    """
    values = [
        (c.id, c.name, c.image, c.state, health_of(c), exit_code_of(c), c.restart_count,
         c.labels, published_ports(c), c.started_at or _in_first_minute(c))
        for c in containers
    ]  # fmt: skip
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


def _in_first_minute(info: ContainerInfo) -> bool:
    bounds = state_age_bounds(info.status)
    return bounds is not None and bounds[0] < 60


def chunks(ids: list[int], size: int = 5000) -> list[list[int]]:
    """Id lists short enough for one IN (...) on every database (SQLite caps parameters)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
