"""What the home page shows: the fleet at a glance, read in a handful of grouped queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, inspect, or_, select, text, true

from portal.core.operations.models import FAILED, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import HOST_STATUSES, Host, HostContainer, HostGpu
from portal.monitoring.events import list_events
from portal.monitoring.models import OPEN
from portal.projects.sharing import shared_host_ids
from portal.proxy.models import GatewayKey, UsageRecord

# A GPU holding more memory than a driver and an idle context does is counted as in use.
_IDLE_GPU_MIB = 512


@dataclass
class GpuModelUse:
    model: str
    count: int
    memory_total_mib: int
    memory_used_mib: int
    in_use: int = 0

    @property
    def free(self) -> int:
        return self.count - self.in_use

    @property
    def memory_free_mib(self) -> int:
        return max(0, self.memory_total_mib - self.memory_used_mib)

    @property
    def used_fraction(self) -> float:
        return self.memory_used_mib / self.memory_total_mib if self.memory_total_mib else 0.0


@dataclass
class GatewayToday:
    requests: int = 0
    tokens: int = 0
    errors: int = 0
    # Requests per hour since midnight UTC, index = hour.
    hourly: list[int] = field(default_factory=lambda: [0] * 24)


@dataclass
class FleetOverview:
    hosts_by_status: dict[str, int]
    hosts: list[dict[str, Any]]
    gpus: list[GpuModelUse]
    applications_by_status: dict[str, int] | None
    gateway: GatewayToday
    operations_by_state: dict[str, int]
    recent_operations: list[Operation]
    failed_operations: list[Operation]
    open_events: list[Any]
    generated_at: datetime


@dataclass(frozen=True)
class Viewer:
    """Whose dashboard: the projects it sees (None: every one) and, for a caller confined to
    projects, its user id (its own operations only)."""

    project_ids: list[int] | None = None
    user_id: int | None = None

    def hosts(self) -> Any:
        """A condition on hosts: the projects' own and those shared with them."""
        if self.project_ids is None:
            return true()
        ids = self.project_ids
        return or_(Host.project_id.in_(ids), Host.id.in_(shared_host_ids(ids)))

    def operations(self) -> Any:
        return true() if self.project_ids is None else Operation.requested_by_id == self.user_id


def fleet_overview(now: datetime | None = None, viewer: Viewer | None = None) -> FleetOverview:
    """Collect everything the dashboard shows, as of `now`, of what `viewer` may see."""
    now = now or utcnow()
    viewer = viewer or Viewer()
    return FleetOverview(
        hosts_by_status=_hosts_by_status(viewer),
        hosts=_host_rows(viewer),
        gpus=_gpus_by_model(viewer),
        applications_by_status=_applications_by_status(viewer),
        gateway=_gateway_today(now, viewer),
        operations_by_state=dict(
            db.session.execute(
                select(Operation.state, func.count())
                .where(viewer.operations())
                .group_by(Operation.state)
            ).all()
        ),
        recent_operations=_operations(None, viewer),
        failed_operations=_operations(FAILED, viewer),
        open_events=_open_events(viewer),
        generated_at=now,
    )


def _open_events(viewer: Viewer, limit: int = 20) -> list[Any]:
    """Open alerts; for a caller confined to projects, those about its hosts (keys name them:
    host:<id>, container:<host id>:..., gpu:<host id>:...)."""
    if viewer.project_ids is None:
        return list_events(OPEN, None, limit)
    ids = set(db.session.scalars(select(Host.id).where(viewer.hosts())))
    return [event for event in list_events(OPEN, None, 500) if _host_of(event.key) in ids][:limit]


def _host_of(key: str) -> int | None:
    parts = key.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _hosts_by_status(viewer: Viewer) -> dict[str, int]:
    query = select(Host.status, func.count()).where(viewer.hosts()).group_by(Host.status)
    found = dict(db.session.execute(query).all())
    return {status: found.get(status, 0) for status in HOST_STATUSES}


def _host_rows(viewer: Viewer, limit: int = 50) -> list[dict[str, Any]]:
    """The first hosts by name, with GPU and running-container counts of those hosts only."""
    query = select(Host).where(viewer.hosts()).order_by(Host.name).limit(limit)
    hosts = db.session.scalars(query).all()
    ids = [host.id for host in hosts]
    gpus = dict(
        db.session.execute(
            select(HostGpu.host_id, func.count())
            .where(HostGpu.host_id.in_(ids))
            .group_by(HostGpu.host_id)
        ).all()
    )
    running = dict(
        db.session.execute(
            select(HostContainer.host_id, func.count())
            .where(HostContainer.host_id.in_(ids), HostContainer.state == "running")
            .group_by(HostContainer.host_id)
        ).all()
    )
    return [
        {
            "id": host.id,
            "name": host.name,
            "address": host.address,
            "status": host.status,
            "gpus": gpus.get(host.id, 0),
            "running_containers": running.get(host.id, 0),
            "cpus": (host.facts or {}).get("cpus") or (host.facts or {}).get("cpu_count"),
            "last_seen_at": host.last_seen_at,
        }
        for host in hosts
    ]


def _gpus_by_model(viewer: Viewer) -> list[GpuModelUse]:
    query = (
        select(
            HostGpu.model,
            func.count(),
            func.coalesce(func.sum(HostGpu.memory_total_mib), 0),
            func.coalesce(func.sum(HostGpu.memory_used_mib), 0),
            func.sum(case((HostGpu.memory_used_mib > _IDLE_GPU_MIB, 1), else_=0)),
        )
        .join(Host, HostGpu.host_id == Host.id)
        .where(viewer.hosts())
        .group_by(HostGpu.model)
        .order_by(HostGpu.model)
    )
    return [
        GpuModelUse(model, count, total, used, int(in_use or 0))
        for model, count, total, used, in_use in db.session.execute(query).all()
    ]


def _applications_by_status(viewer: Viewer) -> dict[str, int] | None:
    """Applications (of the viewer's projects) by status; None until the applications context
    has its table."""
    if not inspect(db.engine).has_table("applications"):
        return None
    if viewer.project_ids is None:
        query = text("SELECT status, count(*) FROM applications GROUP BY status")
    else:
        ids = ", ".join(str(int(project_id)) for project_id in viewer.project_ids) or "NULL"
        query = text(
            f"SELECT status, count(*) FROM applications WHERE project_id IN ({ids}) GROUP BY status"
        )
    rows = db.session.execute(query)
    return {str(status): int(count) for status, count in rows.all()}


def _gateway_today(now: datetime, viewer: Viewer) -> GatewayToday:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window: tuple[Any, ...] = (
        UsageRecord.at >= midnight,
        UsageRecord.at < midnight + timedelta(days=1),
    )
    if viewer.project_ids is not None:  # the requests of the projects' gateway keys
        keys = select(GatewayKey.public_id).where(GatewayKey.project_id.in_(viewer.project_ids))
        window = (*window, UsageRecord.key_id.in_(keys))
    requests, tokens, errors = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(UsageRecord.total_tokens), 0),
            func.coalesce(func.sum(func.cast(UsageRecord.status >= 400, db.Integer)), 0),
        ).where(*window)
    ).one()
    today = GatewayToday(int(requests), int(tokens), int(errors))
    hour = _hour_of(UsageRecord.at)
    per_hour = select(hour, func.count()).where(*window).group_by(hour)
    for at_hour, count in db.session.execute(per_hour).all():
        today.hourly[int(at_hour)] = int(count)
    return today


def _hour_of(column: Any) -> Any:
    if db.engine.dialect.name == "postgresql":
        return func.extract("hour", column)
    return func.strftime("%H", column)


def _operations(state: str | None, viewer: Viewer, limit: int = 8) -> list[Operation]:
    query = select(Operation).where(viewer.operations())
    query = query.order_by(Operation.created_at.desc()).limit(limit)
    if state:
        query = query.where(Operation.state == state)
    return list(db.session.scalars(query))
