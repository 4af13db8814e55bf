"""Hosts shared between projects: a host's own project lends it to another, optionally up to
N of its GPUs.

The other project's members see the host read-only (no settings, delete, bootstrap, nor its
containers and objects: those are the owner's) and deploy their own applications on it. Those
applications belong to the deploying project: its quotas count them, and together they hold
at most the share's GPUs of that host.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.apps.models import Application, AppRevision
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, QuotaExceeded, ValidationFailed
from portal.core.security import ROLE_RANK, current_principal
from portal.extensions import db
from portal.hosts.models import Host
from portal.projects.access import caller_scope, projects_with
from portal.projects.models import HostShare, Project
from portal.projects.quotas import REMOVED


def shares_of(host_id: int) -> list[HostShare]:
    """The host's shares, by project name."""
    query = select(HostShare).join(Project, HostShare.project_id == Project.id)
    return list(
        db.session.scalars(query.where(HostShare.host_id == host_id).order_by(Project.name))
    )


def share_of(host_id: int, project_id: int) -> HostShare | None:
    query = select(HostShare).where(
        HostShare.host_id == host_id, HostShare.project_id == project_id
    )
    return db.session.scalar(query)


def shared_host_ids(project_ids: list[int]) -> Any:
    """A select() of the ids of hosts shared with any of these projects (for list filters)."""
    return select(HostShare.host_id).where(HostShare.project_id.in_(project_ids))


def callers_share(host: Host) -> HostShare | None:
    """The share through which the caller sees `host` (its best role there), if any."""
    scope = caller_scope()
    best = None
    for share in shares_of(host.id):
        role = scope.role_in(share.project_id)
        if role and (best is None or ROLE_RANK[role] > ROLE_RANK[scope.role_in(best.project_id)]):
            best = share
    return best


def seen_through_share(project_id: int | None) -> bool:
    """Whether the caller of this request sees a resource of `project_id` only through a share
    (no role in that project itself)."""
    if project_id is None or not has_request_context() or current_principal() is None:
        return False
    return caller_scope().role_in(project_id) is None


def project_for_new_app(host: Host, prefer: int | None = None) -> int:
    """The project a new application on `host` goes to when none is named: `prefer` (the
    project of the application it copies), the host's, or a sharing one, the first where the
    caller is an operator; outside a request, the host's project."""
    allowed = [host.project_id, *(share.project_id for share in shares_of(host.id))]
    if not has_request_context() or current_principal() is None:
        return prefer if prefer in allowed else host.project_id
    scope = caller_scope()
    ordered = ([prefer] if prefer in allowed else []) + allowed
    operator = next((pid for pid in ordered if scope.can(pid, "operator")), None)
    # None: the caller's role is too low everywhere; the first project it sees says so (403).
    return operator or next((pid for pid in ordered if scope.role_in(pid)), host.project_id)


def app_move_targets(app: Application, host: Host) -> list[Project]:
    """The projects an application may move to from the caller's hands: where the caller is
    admin, other than its own, that own its host or have a share of it."""
    if not caller_scope().can(app.project_id, "admin"):
        return []
    shared_with = {share.project_id for share in shares_of(host.id)}
    return [
        project
        for project in projects_with("admin")
        if project.id != app.project_id
        and (project.id == host.project_id or project.id in shared_with)
    ]


def require_deployable_in(host: Host, project: Project) -> None:
    """422 naming `project` unless the host is the project's own or shared with it."""
    if project.id != host.project_id and share_of(host.id, project.id) is None:
        message = f"Host '{host.name}' is not shared with project '{project.name}'."
        raise ValidationFailed(message, {"project": [message]})


def gpus_on_host(project_id: int, host_id: int, except_app_id: int | None = None) -> int:
    """GPUs the project's applications on the host (but one) hold."""
    query = (
        select(AppRevision.gpu_indexes)
        .join(Application, AppRevision.app_id == Application.id)
        .where(
            Application.project_id == project_id,
            Application.host_id == host_id,
            Application.status != REMOVED,
            AppRevision.number == Application.latest_revision,
        )
    )
    if except_app_id is not None:
        query = query.where(Application.id != except_app_id)
    return sum(len(indexes or []) for indexes in db.session.scalars(query))


def check_share_gpus(host: Host, project_id: int, app_id: int | None, gpus: int) -> None:
    """Refuse (409 `quota_exceeded`, quota `host_share_gpus`) GPUs beyond the project's share
    of a host it does not own; 409 when the host is no longer shared with it."""
    if project_id == host.project_id:
        return
    share = share_of(host.id, project_id)
    if share is None:
        raise Conflict(f"Host '{host.name}' is no longer shared with this application's project.")
    if share.gpu_limit is None or gpus == 0:
        return
    used = gpus_on_host(project_id, host.id, except_app_id=app_id)
    if used + gpus > share.gpu_limit:
        name = share.project.name
        raise QuotaExceeded(
            f"Project '{name}' is over its 'host_share_gpus' quota on host '{host.name}': {used} "
            f"of the {share.gpu_limit} GPUs shared with it in use, {gpus} more asked.",
            {"quota": "host_share_gpus", "host": host.name, "used": used, "requested": gpus,
             "limit": share.gpu_limit},
        )  # fmt: skip


def _project_named(name: str) -> Project:
    """Any project by name: a host's admins share with projects they need not belong to."""
    project = db.session.scalar(select(Project).where(Project.name == name))
    if project is None:
        message = f"No project named '{name}'."
        raise NotFound(message, {"project": [message]})
    return project


def share_host(host: Host, project_name: str, gpu_limit: int | None) -> HostShare:
    """Share the host with another project (the caller is admin of the host's project)."""
    project = _project_named(project_name)
    if project.id == host.project_id:
        message = f"Host '{host.name}' already belongs to project '{project.name}'."
        raise ValidationFailed(message, {"project": [message]})
    share = HostShare(host_id=host.id, project_id=project.id, gpu_limit=gpu_limit)
    db.session.add(share)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"Host '{host.name}' is already shared with '{project.name}'.") from None
    _audit_share("host.share", host, share)
    db.session.commit()
    return share


def get_share(host: Host, project_name: str) -> HostShare:
    project = db.session.scalar(select(Project).where(Project.name == project_name))
    share = share_of(host.id, project.id) if project is not None else None
    if share is None:
        raise NotFound(f"Host '{host.name}' is not shared with a project named '{project_name}'.")
    return share


def change_share(host: Host, share: HostShare, gpu_limit: int | None) -> HostShare:
    """Change how many GPUs the share lends; not below what the project's applications hold."""
    used = gpus_on_host(share.project_id, host.id)
    if gpu_limit is not None and gpu_limit < used:
        raise Conflict(
            f"Project '{share.project.name}' holds {used} GPUs of host '{host.name}'; a share "
            f"of {gpu_limit} is too small.",
            {"gpu_limit": [f"at least {used}"]},
        )
    share.gpu_limit = gpu_limit
    _audit_share("host.share.update", host, share)
    db.session.commit()
    return share


def unshare_host(host: Host, share: HostShare) -> None:
    """End a share; refused (409) while the project still has applications on the host."""
    query = select(Application.name).where(
        Application.host_id == host.id,
        Application.project_id == share.project_id,
        Application.status != REMOVED,
    )
    names = sorted(db.session.scalars(query))
    if names:
        raise Conflict(
            f"Project '{share.project.name}' still has applications on host '{host.name}' "
            f"({', '.join(names)}); remove or move them first.",
            {"applications": names},
        )
    _audit_share("host.unshare", host, share)
    db.session.delete(share)
    db.session.commit()


def _audit_share(action: str, host: Host, share: HostShare) -> None:
    """One record in each project: the host's and the one it is shared with."""
    details = {"host": host.name, "project": share.project.name, "gpu_limit": share.gpu_limit}
    for project_id in (host.project_id, share.project_id):
        record_audit(action, f"host:{host.name}", details=details, project_id=project_id)
