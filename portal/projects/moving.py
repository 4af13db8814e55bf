"""Move resources between projects: a host with its project's applications on it, one
application, a gateway key, a proxy route.

The caller is admin of both projects (the API checks the source with `checked`, the target
with `target_project`). What moves counts against the target's quotas from then on, so a move
that would take the target over one is refused (409 `quota_exceeded`). Each move writes an
audit record in both projects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.apps.models import Application
from portal.core.audit import record_audit
from portal.core.errors import ValidationFailed
from portal.extensions import db
from portal.hosts.models import Host
from portal.projects import quotas, sharing
from portal.projects.models import Project
from portal.proxy.models import GatewayKey, ProxyRoute


def move_host(host: Host, target: Project) -> Host:
    """Move the host and its own project's applications on it; shares with other projects
    stay (their applications stay theirs), a share with the target ends (it owns the host)."""
    source = _source(host.project_id, target, f"Host '{host.name}'")
    query = select(Application).where(
        Application.host_id == host.id, Application.project_id == source.id
    )
    apps = list(db.session.scalars(query.order_by(Application.name)))
    quotas.check_room(target, apps)
    for app in apps:
        app.project_id = target.id
    host.project_id = target.id
    share = sharing.share_of(host.id, target.id)
    if share is not None:
        db.session.delete(share)
    _audit("host.move", f"host:{host.name}", source, target,
           {"applications": [app.name for app in apps]})  # fmt: skip
    db.session.commit()
    return host


def move_app(app: Application, target: Project) -> Application:
    """Move an application to a project that owns its host or has a share of it."""
    host = db.session.get(Host, app.host_id)
    source = _source(app.project_id, target, f"Application '{app.name}'")
    sharing.require_deployable_in(host, target)
    quotas.check_room(target, [app])
    held = 0 if app.status == quotas.REMOVED else len(quotas.latest_gpu_indexes(app))
    sharing.check_share_gpus(host, target.id, app.id, held)
    app.project_id = target.id
    _audit("app.move", f"app:{app.name}", source, target, {"host": host.name})
    db.session.commit()
    return app


def move_key(key: GatewayKey, target: Project) -> GatewayKey:
    """Move a gateway key: its usage counts in the target from now on."""
    source = _source(key.project_id, target, f"Gateway key '{key.name}'")
    key.project_id = target.id
    _audit("gateway_key.move", f"gateway_key:{key.public_id}", source, target, {})
    db.session.commit()
    return key


def move_route(route: ProxyRoute, target: Project) -> ProxyRoute:
    source = _source(route.project_id, target, f"Route '{route.name}'")
    route.project_id = target.id
    _audit("route.move", f"route:{route.name}", source, target, {})
    db.session.commit()
    return route


def _source(project_id: int, target: Project, what: str) -> Project:
    source = db.session.get(Project, project_id)
    if source.id == target.id:
        message = f"{what} is already in project '{target.name}'."
        raise ValidationFailed(message, {"project": [message]})
    return source


def _audit(
    action: str, what: str, source: Project, target: Project, details: dict[str, Any]
) -> None:
    """One record in each project, so each one's audit trail shows the move."""
    details = {"from": source.name, "to": target.name, **details}
    for project in (source, target):
        record_audit(action, what, details=details, project_id=project.id)
