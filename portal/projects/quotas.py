"""A project's quotas and their use: the GPUs its applications hold (how many, of which model,
how much memory), its applications, and its gateway requests and tokens.

An application holds the GPUs its latest revision asks for until it is removed from its host,
so a second deploy cannot slip in while the first one's operation is still queued. Which model
a GPU is and how much memory it has come from its host's GPU facts (`host_gpus`); a GPU is held
whole by one application, so its memory counts whole. The gateway quotas are enforced by the
proxy (the config document carries them); their use here is read from the ingested usage
records, a second or so behind the proxy's own counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from portal.apps.models import Application, AppRevision
from portal.core.errors import QuotaExceeded
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import HostGpu
from portal.projects.models import Project
from portal.proxy.models import UsageRecord

REMOVED = "removed"
# The model of a held GPU its host's facts no longer list (the host was re-read since).
UNKNOWN_MODEL = "unknown"


@dataclass
class GpuUse:
    """GPUs held or asked for: how many, their memory, and how many of each model."""

    count: int = 0
    memory_mib: int = 0
    by_model: dict[str, int] = field(default_factory=dict)

    def add(self, model: str, memory_mib: int) -> None:
        self.count += 1
        self.memory_mib += memory_mib
        self.by_model[model] = self.by_model.get(model, 0) + 1


def _gpu_facts(host_ids: set[int]) -> dict[tuple[int, int], tuple[str, int]]:
    """(host id, GPU index) -> (model, memory in MiB), from the hosts' GPU facts."""
    if not host_ids:
        return {}
    query = select(HostGpu.host_id, HostGpu.index, HostGpu.model, HostGpu.memory_total_mib)
    rows = db.session.execute(query.where(HostGpu.host_id.in_(host_ids))).all()
    return {(host_id, index): (model, memory or 0) for host_id, index, model, memory in rows}


def _held_rows(project_ids: list[int] | None, except_app_id: int | None) -> list[Any]:
    """(project id, host id, GPU indexes) of each application's latest revision, but one."""
    query = (
        select(Application.project_id, Application.host_id, AppRevision.gpu_indexes)
        .join(Application, AppRevision.app_id == Application.id)
        .where(Application.status != REMOVED, AppRevision.number == Application.latest_revision)
    )
    if project_ids is not None:
        query = query.where(Application.project_id.in_(project_ids))
    if except_app_id is not None:
        query = query.where(Application.id != except_app_id)
    return list(db.session.execute(query).all())


def held_gpus(
    project_ids: list[int] | None = None, except_app_id: int | None = None
) -> tuple[dict[int, GpuUse], dict[int, int]]:
    """Per project (these, or all): the GPUs its applications (but one) hold, and how many
    applications it has (two queries)."""
    rows = _held_rows(project_ids, except_app_id)
    facts = _gpu_facts({host_id for _, host_id, indexes in rows if indexes})
    gpus: dict[int, GpuUse] = {}
    apps: dict[int, int] = {}
    for project_id, host_id, indexes in rows:  # one row per application
        use = gpus.setdefault(project_id, GpuUse())
        for index in indexes or []:
            use.add(*facts.get((host_id, index), (UNKNOWN_MODEL, 0)))
        apps[project_id] = apps.get(project_id, 0) + 1
    return gpus, apps


def gpus_asked(host_id: int, indexes: list[int]) -> GpuUse:
    """The GPUs a revision asks for on its host: how many, of which model, their memory."""
    facts = _gpu_facts({host_id})
    asked = GpuUse()
    for index in indexes:
        asked.add(*facts.get((host_id, index), (UNKNOWN_MODEL, 0)))
    return asked


def applications_in(project_id: int) -> int:
    query = select(func.count()).select_from(Application)
    query = query.where(Application.project_id == project_id, Application.status != REMOVED)
    return db.session.scalar(query) or 0


@dataclass
class GatewayUse:
    """A project's gateway requests this UTC minute and tokens today and this month (UTC)."""

    requests_this_minute: int = 0
    tokens_today: int = 0
    tokens_this_month: int = 0


def gateway_use(project_ids: list[int] | None = None) -> dict[int, GatewayUse]:
    """Per project (these, or all that used the gateway this month), from usage records."""
    now = utcnow()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    minute = now.replace(second=0, microsecond=0)
    query = (
        select(
            UsageRecord.project_id,
            func.sum(case((UsageRecord.at >= minute, 1), else_=0)),
            func.sum(case((UsageRecord.at >= day, UsageRecord.total_tokens), else_=0)),
            func.sum(UsageRecord.total_tokens),
        )
        .where(UsageRecord.at >= month, UsageRecord.project_id.is_not(None))
        .group_by(UsageRecord.project_id)
    )
    if project_ids is not None:
        query = query.where(UsageRecord.project_id.in_(project_ids))
    return {
        row[0]: GatewayUse(int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))
        for row in db.session.execute(query).all()
    }


def usage(project: Project) -> dict[str, Any]:
    """What the project uses of each quota, and the limits (None: none)."""
    gpus, apps = held_gpus([project.id])
    return _document(project, gpus, apps, gateway_use([project.id]))


def usage_document(project: Project, gpus: GpuUse, apps: int, gateway: GatewayUse) -> dict:
    """Each quota's use and limit, as `GET /api/v1/projects/{id}` shows them."""
    limits = project.gpu_model_limits or {}
    return {
        "gpus": {"used": gpus.count, "limit": project.gpu_limit},
        "applications": {"used": apps, "limit": project.application_limit},
        "gpus_per_model": {
            model: {"used": gpus.by_model.get(model, 0), "limit": limits.get(model)}
            for model in sorted({*gpus.by_model, *limits})
        },
        "gpu_memory_mib": {"used": gpus.memory_mib, "limit": project.gpu_memory_limit_mib},
        "gateway_rpm": {"used": gateway.requests_this_minute, "limit": project.gateway_rpm_limit},
        "gateway_tokens_per_day": {
            "used": gateway.tokens_today,
            "limit": project.gateway_tokens_per_day_limit,
        },
        "gateway_tokens_per_month": {
            "used": gateway.tokens_this_month,
            "limit": project.gateway_tokens_per_month_limit,
        },
    }


def _refuse_over(project: Project, quota: str, used: int, asked: int, limit: int | None,
                 unit: str, **details: Any) -> None:  # fmt: skip
    """Raise 409 `quota_exceeded` when `used + asked` goes over `limit` (None: no limit)."""
    if limit is None or asked == 0 or used + asked <= limit:
        return
    which = f" for '{details['model']}'" if "model" in details else ""
    raise QuotaExceeded(
        f"Project '{project.name}' is over its '{quota}' quota{which}: {used} of {limit} "
        f"{unit} in use, {asked} more asked.",
        {"quota": quota, **details, "used": used, "requested": asked, "limit": limit},
    )


def check_gpu_quotas(project_id: int, app_id: int | None, host_id: int, gpus: list[int]) -> None:
    """Refuse (409) a revision whose GPUs would put the project over its GPU count ('gpus'),
    a GPU model's ('gpus_per_model') or its GPU memory ('gpu_memory_mib') quota."""
    project = db.session.get(Project, project_id)
    if project is None or not gpus:
        return
    limits = project.gpu_model_limits or {}
    if project.gpu_limit is None and project.gpu_memory_limit_mib is None and not limits:
        return
    held = held_gpus([project_id], except_app_id=app_id)[0].get(project_id, GpuUse())
    _check_gpus(project, held, gpus_asked(host_id, gpus))


def check_room(project: Project, apps: list[Application]) -> None:
    """Refuse (409) applications moving into `project` that its quotas have no room for: the
    GPUs their latest revisions hold (count, per model, memory) and their number. An
    application removed from its host holds nothing and does not count."""
    held_apps = [app for app in apps if app.status != REMOVED]
    if not held_apps:
        return
    asked = GpuUse()
    for app in held_apps:
        indexes = latest_gpu_indexes(app)
        facts = _gpu_facts({app.host_id}) if indexes else {}
        for index in indexes or []:
            asked.add(*facts.get((app.host_id, index), (UNKNOWN_MODEL, 0)))
    held = held_gpus([project.id])[0].get(project.id, GpuUse())
    _check_gpus(project, held, asked)
    _refuse_over(project, "applications", applications_in(project.id), len(held_apps),
                 project.application_limit, "applications")  # fmt: skip


def latest_gpu_indexes(app: Application) -> list[int]:
    """The GPUs the application's latest revision asks for (what it holds)."""
    query = select(AppRevision.gpu_indexes).where(
        AppRevision.app_id == app.id, AppRevision.number == app.latest_revision
    )
    return list(db.session.scalar(query) or [])


def _check_gpus(project: Project, held: GpuUse, asked: GpuUse) -> None:
    limits = project.gpu_model_limits or {}
    _refuse_over(project, "gpus", held.count, asked.count, project.gpu_limit, "GPUs")
    for model, count in sorted(asked.by_model.items()):
        _refuse_over(project, "gpus_per_model", held.by_model.get(model, 0), count,
                     limits.get(model), "GPUs", model=model)  # fmt: skip
    _refuse_over(project, "gpu_memory_mib", held.memory_mib, asked.memory_mib,
                 project.gpu_memory_limit_mib, "MiB")  # fmt: skip


def check_application_quota(project_id: int) -> None:
    """Refuse (409, quota 'applications') a new application over the project's limit."""
    project = db.session.get(Project, project_id)
    if project is None or project.application_limit is None:
        return
    used = applications_in(project_id)
    if used + 1 > project.application_limit:
        raise QuotaExceeded(
            f"Project '{project.name}' is over its 'applications' quota: {used} of "
            f"{project.application_limit} applications exist.",
            {"quota": "applications", "used": used, "requested": 1,
             "limit": project.application_limit},
        )  # fmt: skip


def usage_documents(project_ids: list[int] | None = None) -> list[tuple[Project, dict]]:
    """Projects (these, or all) with their whole usage document, in 4 queries."""
    gpus, apps = held_gpus(project_ids)
    gateway = gateway_use(project_ids)
    return [(p, _document(p, gpus, apps, gateway)) for p in _projects(project_ids)]


def _document(project: Project, gpus: dict[int, GpuUse], apps: dict[int, int],
              gateway: dict[int, GatewayUse]) -> dict[str, Any]:  # fmt: skip
    pid = project.id
    return usage_document(project, gpus.get(pid, GpuUse()), apps.get(pid, 0),
                          gateway.get(pid, GatewayUse()))  # fmt: skip


def _projects(project_ids: list[int] | None) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if project_ids is not None:
        query = query.where(Project.id.in_(project_ids))
    return list(db.session.scalars(query))
