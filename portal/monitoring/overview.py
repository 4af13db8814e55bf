"""What the home page shows: the fleet at a glance, read in a handful of grouped queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, inspect, or_, select

from portal.core.operations.models import FAILED, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import HOST_STATUSES, Host, HostContainer, HostGpu
from portal.monitoring.events import list_events
from portal.monitoring.models import OPEN
from portal.projects.access import ProjectFilter, every_project
from portal.projects.models import HostShare
from portal.proxy.models import UsageRecord
from portal.proxy.usage import usage_within

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


def fleet_overview(
    now: datetime | None = None, within: ProjectFilter = every_project
) -> FleetOverview:
    """Collect everything the dashboard shows, as of `now`, of the projects `within` lets by."""
    now = now or utcnow()
    by_state = select(Operation.state, func.count()).where(within(Operation.project_id))
    return FleetOverview(
        hosts_by_status=_hosts_by_status(within),
        hosts=_host_rows(within),
        gpus=_gpus_by_model(within),
        applications_by_status=_applications_by_status(within),
        gateway=_gateway_today(now, within),
        operations_by_state=dict(db.session.execute(by_state.group_by(Operation.state)).all()),
        recent_operations=_operations(None, within),
        failed_operations=_operations(FAILED, within),
        open_events=list_events(OPEN, None, 20, within),
        generated_at=now,
    )


def hosts_within(within: ProjectFilter) -> Any:
    """Hosts of the projects `within` lets by, and the hosts shared with them."""
    shared = select(HostShare.host_id).where(within(HostShare.project_id))
    return or_(within(Host.project_id), Host.id.in_(shared))


def _hosts_by_status(within: ProjectFilter) -> dict[str, int]:
    query = select(Host.status, func.count()).where(hosts_within(within)).group_by(Host.status)
    found = dict(db.session.execute(query).all())
    return {status: found.get(status, 0) for status in HOST_STATUSES}


def _host_rows(within: ProjectFilter, limit: int = 50) -> list[dict[str, Any]]:
    """The first hosts by name, with GPU and running-container counts of those hosts only."""
    query = select(Host).where(hosts_within(within)).order_by(Host.name).limit(limit)
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


def _gpus_by_model(within: ProjectFilter) -> list[GpuModelUse]:
    query = (
        select(
            HostGpu.model,
            func.count(),
            func.coalesce(func.sum(HostGpu.memory_total_mib), 0),
            func.coalesce(func.sum(HostGpu.memory_used_mib), 0),
            func.sum(case((HostGpu.memory_used_mib > _IDLE_GPU_MIB, 1), else_=0)),
        )
        .join(Host, Host.id == HostGpu.host_id)
        .where(hosts_within(within))
        .group_by(HostGpu.model)
        .order_by(HostGpu.model)
    )
    return [
        GpuModelUse(model, count, total, used, int(in_use or 0))
        for model, count, total, used, in_use in db.session.execute(query).all()
    ]


# Databases (by URL) known to have the applications table: once made it stays, so the catalog
# query that asks is not sent again with every dashboard refresh.
_HAS_APPLICATIONS: set[str] = set()


def _applications_by_status(within: ProjectFilter) -> dict[str, int] | None:
    """Applications by status; None until the applications context has its table."""
    url = str(db.engine.url)
    if url not in _HAS_APPLICATIONS:
        if not inspect(db.engine).has_table("applications"):
            return None
        _HAS_APPLICATIONS.add(url)
    from portal.apps.models import Application

    query = select(Application.status, func.count()).where(within(Application.project_id))
    rows = db.session.execute(query.group_by(Application.status))
    return {str(status): int(count) for status, count in rows.all()}


def _gateway_today(now: datetime, within: ProjectFilter) -> GatewayToday:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window = (
        UsageRecord.at >= midnight,
        UsageRecord.at < midnight + timedelta(days=1),
        usage_within(within),
    )
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


def _operations(state: str | None, within: ProjectFilter, limit: int = 8) -> list[Operation]:
    query = select(Operation).where(within(Operation.project_id))
    query = query.order_by(Operation.created_at.desc()).limit(limit)
    if state:
        query = query.where(Operation.state == state)
    return list(db.session.scalars(query))
