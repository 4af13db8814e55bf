"""Spectr's own alerts: detectors that open and resolve events, and the event log queries.

Each detector compares the fleet's current state (hosts, containers, GPUs, operations) with
the open events: a condition without an open event opens one, an open event whose condition
ended is resolved. Running a detector twice changes nothing, so the periodic job may fire
again after a restart without raising duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, literal, or_, select

from portal.apps.lifecycle import applications_by_host
from portal.core.errors import NotFound
from portal.core.operations.models import FAILED, Operation
from portal.core.timeutil import utcnow
from portal.extensions import commit_keeping_loaded, db
from portal.hosts.models import UNREACHABLE, Host, HostContainer, HostGpu
from portal.monitoring.models import (
    CONTAINER_RESTARTING,
    DEPLOYMENT_FAILED,
    GPU_MEMORY_HIGH,
    HOST_UNREACHABLE,
    OPEN,
    RESOLVED,
    Event,
)
from portal.monitoring.settings import monitoring_setting
from portal.projects.access import ProjectFilter, checked_in_project, every_project

# Failed operations of these kinds (or kinds containing "deploy") raise deployment.failed.
DEPLOY_KIND_WORDS = ("deploy",)
# Only failures this recent raise an event: a fresh install must not replay history.
DEPLOY_FAILURE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Condition:
    """A problem that holds now: what it is about and how to describe it."""

    kind: str
    key: str
    subject: str
    message: str
    severity: str = "warning"
    details: dict[str, Any] = field(default_factory=dict)
    project_id: int | None = None  # of the host or operation it is about


def unreachable_hosts() -> list[Condition]:
    hosts = db.session.execute(
        select(Host.id, Host.name, Host.status_reason, Host.address, Host.project_id).where(
            Host.status == UNREACHABLE
        )
    ).all()
    return [
        Condition(
            HOST_UNREACHABLE,
            f"host:{host_id}",
            name,
            reason or f"Host {name} does not answer.",
            "critical",
            {"host_id": host_id, "address": address},
            project_id,
        )
        for host_id, name, reason, address, project_id in hosts
    ]


def restarting_containers() -> list[Condition]:
    """Restarting containers of Spectr's applications (others' containers are not ours to page).

    An open event stays open until its container has been out of the restarting state for
    MONITORING_STEADY_SECONDS (running that long, or stopped that long), or is gone: a crash
    loop is caught running between two crashes now and then, a restart stopped for a moment,
    and none of those times may close the event only to open a new one at the next crash.
    """
    steady = timedelta(seconds=float(monitoring_setting("MONITORING_STEADY_SECONDS")))
    open_keys = set(
        db.session.scalars(
            select(Event.key).where(Event.state == OPEN, Event.kind == CONTAINER_RESTARTING)
        )
    )
    since = utcnow() - steady
    settling = or_(
        and_(
            HostContainer.state == "running",
            or_(HostContainer.started_at.is_(None), HostContainer.started_at > since),
        ),
        # stopped for a moment, as a restart does: the rows' time is when the state changed
        and_(HostContainer.state != "running", HostContainer.updated_at > since),
    )
    rows = db.session.execute(
        select(HostContainer, Host.name, Host.project_id)
        .join(Host, Host.id == HostContainer.host_id)
        .where(or_(HostContainer.state == "restarting", settling))
    ).all()
    owned = applications_by_host({row.host_id for row, _, _ in rows})
    rows = [
        (row, host_name, project_id)
        for row, host_name, project_id in rows
        if row.host_id in owned
        and owned[row.host_id].own(row.name, row.labels)
        and (row.state == "restarting" or _container_key(row) in open_keys)
    ]
    return [
        Condition(
            CONTAINER_RESTARTING,
            _container_key(row),
            f"{host_name}/{row.name}",
            f"Container {row.name} on {host_name} is restarting"
            # engines' container lists carry no restart count; inspect fills it in
            + (f" (restarted {row.restart_count} times)." if row.restart_count else "."),
            details={"host": host_name, "container": row.name, "restarts": row.restart_count},
            project_id=project_id,
        )
        for row, host_name, project_id in rows
    ]


def _container_key(row: HostContainer) -> str:
    return f"container:{row.host_id}:{row.container_id}"


def high_gpu_memory() -> list[Condition]:
    ratio = float(monitoring_setting("MONITORING_GPU_MEMORY_RATIO"))
    rows = db.session.execute(
        select(HostGpu, Host.name, Host.project_id)
        .join(Host, Host.id == HostGpu.host_id)
        .where(HostGpu.memory_total_mib > 0)
        .where(HostGpu.memory_used_mib > HostGpu.memory_total_mib * ratio)
    ).all()
    return [
        Condition(
            GPU_MEMORY_HIGH,
            f"gpu:{gpu.host_id}:{gpu.index}",
            f"{host_name}/gpu{gpu.index}",
            f"GPU {gpu.index} ({gpu.model}) on {host_name} uses "
            f"{gpu.memory_used_mib} of {gpu.memory_total_mib} MiB.",
            details={"host": host_name, "model": gpu.model, "used_mib": gpu.memory_used_mib},
            project_id=project_id,
        )
        for gpu, host_name, project_id in rows
    ]


def failed_deployments() -> list[Condition]:
    """Recent failed deploy operations that have no event yet (resolved ones included)."""
    since = utcnow() - DEPLOY_FAILURE_WINDOW
    has_event = exists().where(Event.key == literal("operation:") + Operation.id)
    rows = db.session.execute(
        select(
            Operation.id, Operation.kind, Operation.target, Operation.error, Operation.project_id
        ).where(
            Operation.state == FAILED,
            Operation.finished_at >= since,
            or_(*(Operation.kind.contains(word) for word in DEPLOY_KIND_WORDS)),
            ~has_event,
        )
    ).all()
    return [
        Condition(
            DEPLOYMENT_FAILED,
            f"operation:{op_id}",
            target or kind,
            f"{kind} of {target or 'an application'} failed: {error or 'no reason given'}",
            "critical",
            {"operation_id": op_id, "kind": kind},
            project_id,
        )
        for op_id, kind, target, error, project_id in rows
    ]


# Point-in-time events stay open until an operator resolves them; the others end by themselves.
LASTING_DETECTORS = (unreachable_hosts, restarting_containers, high_gpu_memory)
POINT_DETECTORS = (failed_deployments,)


def detect_events() -> tuple[list[Event], list[Event]]:
    """Open events for new conditions and resolve ended ones; return (opened, resolved).

    Open events are compared by key from plain rows; only the events that change are loaded
    as objects (ten thousand hosts down at once are ten thousand open events to compare).
    """
    open_events = dict(
        db.session.execute(
            select(Event.key, Event.id).where(Event.state == OPEN, Event.kind != DEPLOYMENT_FAILED)
        ).all()
    )
    lasting: dict[str, Condition] = {}
    for detector in LASTING_DETECTORS:
        lasting.update({c.key: c for c in detector()})
    opened = [_open(c) for key, c in lasting.items() if key not in open_events]
    ended = [event_id for key, event_id in open_events.items() if key not in lasting]
    resolved = []
    for start in range(0, len(ended), 5000):
        chunk = select(Event).where(Event.id.in_(ended[start : start + 5000]))
        resolved += [_resolve(event) for event in db.session.scalars(chunk)]
    opened.extend(_open(c) for c in _unseen(POINT_DETECTORS))
    commit_keeping_loaded()  # the caller announces them: no reload of each event after commit
    return opened, resolved


def _unseen(detectors: tuple) -> list[Condition]:
    conditions = [c for detector in detectors for c in detector()]
    if not conditions:
        return []
    seen = set(
        db.session.scalars(select(Event.key).where(Event.key.in_([c.key for c in conditions])))
    )
    return [c for c in conditions if c.key not in seen]


def _open(condition: Condition) -> Event:
    event = Event(
        kind=condition.kind,
        key=condition.key,
        severity=condition.severity,
        subject=condition.subject,
        message=condition.message,
        details=condition.details,
        project_id=condition.project_id,
    )
    db.session.add(event)
    return event


def _resolve(event: Event) -> Event:
    event.state, event.resolved_at = RESOLVED, utcnow()
    return event


def resolve_event(event: Event) -> Event:
    """Close an event by hand (an operator acknowledged it)."""
    if event.state == OPEN:
        _resolve(event)
        db.session.commit()
    return event


def visible_event(event_id: int, needed: str = "viewer") -> Event:
    """The event, if the caller has `needed` in its project (none: `default`); 404 if not."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound(f"No event {event_id}.")
    return checked_in_project(event, event.project_id, needed, f"No event {event_id}.")


def list_events(
    state: str | None, kind: str | None, limit: int, within: ProjectFilter = every_project
) -> list[Event]:
    """Newest events first, optionally only one state or kind, of the projects `within` lets by."""
    query = select(Event).where(within(Event.project_id))
    query = query.order_by(Event.opened_at.desc(), Event.id.desc()).limit(limit)
    if state:
        query = query.where(Event.state == state)
    if kind:
        query = query.where(Event.kind == kind)
    return list(db.session.scalars(query))
