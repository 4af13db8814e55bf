"""A project's quotas and their use: GPUs its applications hold, and its applications.

An application holds the GPUs its latest revision asks for until it is removed from its host,
so a second deploy cannot slip in while the first one's operation is still queued.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from portal.apps.models import Application, AppRevision
from portal.core.errors import QuotaExceeded
from portal.extensions import db
from portal.projects.models import Project

REMOVED = "removed"


def gpus_in_use(project_id: int, except_app_id: int | None = None) -> int:
    """GPUs the project's applications (but one) hold: their latest revisions' devices."""
    query = (
        select(AppRevision.gpu_indexes)
        .join(Application, AppRevision.app_id == Application.id)
        .where(
            Application.project_id == project_id,
            Application.status != REMOVED,
            AppRevision.number == Application.latest_revision,
        )
    )
    if except_app_id is not None:
        query = query.where(Application.id != except_app_id)
    return sum(len(indexes or []) for indexes in db.session.scalars(query))


def applications_in(project_id: int) -> int:
    query = select(func.count()).select_from(Application)
    query = query.where(Application.project_id == project_id, Application.status != REMOVED)
    return db.session.scalar(query) or 0


def usage(project: Project) -> dict[str, Any]:
    """What the project uses of each quota, and the limits (None: none)."""
    return {
        "gpus": {"used": gpus_in_use(project.id), "limit": project.gpu_limit},
        "applications": {"used": applications_in(project.id), "limit": project.application_limit},
    }


def check_gpu_quota(project_id: int, app_id: int | None, gpus: int) -> None:
    """Refuse (409, quota 'gpus') a deploy that would put the project over its GPU limit."""
    project = db.session.get(Project, project_id)
    if project is None or project.gpu_limit is None or gpus == 0:
        return
    used = gpus_in_use(project_id, except_app_id=app_id)
    if used + gpus > project.gpu_limit:
        raise QuotaExceeded(
            f"Project '{project.name}' is over its 'gpus' quota: {used} of {project.gpu_limit} "
            f"GPUs in use, {gpus} more asked.",
            {"quota": "gpus", "used": used, "requested": gpus, "limit": project.gpu_limit},
        )


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


def usage_by_project(project_ids: list[int] | None = None) -> list[tuple[Project, int, int]]:
    """Projects (these, or all) with the GPUs and the applications each uses, in 2 queries."""
    gpus: dict[int, int] = {}
    apps: dict[int, int] = {}
    held = (
        select(Application.project_id, AppRevision.gpu_indexes)
        .join(Application, AppRevision.app_id == Application.id)
        .where(Application.status != REMOVED, AppRevision.number == Application.latest_revision)
    )
    for project_id, indexes in db.session.execute(held).all():  # one row per application
        gpus[project_id] = gpus.get(project_id, 0) + len(indexes or [])
        apps[project_id] = apps.get(project_id, 0) + 1
    projects = select(Project).order_by(Project.name)
    if project_ids is not None:
        projects = projects.where(Project.id.in_(project_ids))
    return [(p, gpus.get(p.id, 0), apps.get(p.id, 0)) for p in db.session.scalars(projects)]
