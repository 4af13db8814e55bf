"""Page actions of projects: share a host with another project, end a share, move a host or an
application to another project. The same services, schemas and access rules as the API's
(portal/projects/sharing_api.py): the caller is admin of the resource's project (and, to move
it, of the target project)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from portal.apps.service import visible_app
from portal.core.errors import SpectrError
from portal.hosts.service import visible_host
from portal.projects import moving, sharing
from portal.projects.access import checked, target_project
from portal.projects.models import Project
from portal.projects.schemas import HostShareAddSchema, MoveSchema
from portal.proxy import service as proxy
from portal.web.auth import page_project_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("project_move_pages", __name__)


def _back(host_id: int) -> Any:
    return redirect(url_for("hosts_pages.detail", host_id=host_id) + "#host-projects")


@bp.post("/hosts/<id:host_id>/shares")
@page_project_role("admin")
def share(host_id: int) -> Any:
    host = visible_host(host_id, "admin")
    raw = {"project": request.form.get("project", "").strip(),
           "gpu_limit": request.form.get("gpu_limit", "").strip() or None}  # fmt: skip
    try:
        body = load_form(HostShareAddSchema(), raw)
        sharing.share_host(host, body["project"], body["gpu_limit"])
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"{host.name} is shared with {body['project']}.")
    return _back(host_id)


@bp.post("/hosts/<id:host_id>/shares/<string:project>/end")
@page_project_role("admin")
def end_share(host_id: int, project: str) -> Any:
    host = visible_host(host_id, "admin")
    try:
        sharing.unshare_host(host, sharing.get_share(host, project))
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"{host.name} is no longer shared with {project}.")
    return _back(host_id)


@bp.post("/hosts/<id:host_id>/move")
@page_project_role("admin")
def move(host_id: int) -> Any:
    host = visible_host(host_id, "admin")
    return _moved(f"{host.name}, with its project's applications,",
                  lambda target: moving.move_host(host, target),
                  url_for("hosts_pages.detail", host_id=host_id) + "#host-projects")  # fmt: skip


@bp.post("/apps/<id:app_id>/move")
@page_project_role("admin")
def move_app(app_id: int) -> Any:
    app = visible_app(app_id, "admin")
    return _moved(app.name, lambda target: moving.move_app(app, target),
                  url_for("apps_pages.detail", app_id=app_id) + "#app-projects")  # fmt: skip


@bp.post("/gateway/keys/<id:key_id>/move")
@page_project_role("admin")
def move_key(key_id: int) -> Any:
    key = checked(proxy.get_key(key_id), "admin", f"No gateway key with id {key_id}.")
    return _moved(f"The key {key.name}", lambda target: moving.move_key(key, target),
                  url_for("proxy_pages.index"))  # fmt: skip


@bp.post("/gateway/routes/<id:route_id>/move")
@page_project_role("admin")
def move_route(route_id: int) -> Any:
    route = checked(proxy.get_route(route_id), "admin", f"No route with id {route_id}.")
    return _moved(f"The route {route.name}", lambda target: moving.move_route(route, target),
                  url_for("proxy_pages.index"))  # fmt: skip


def _moved(what: str, move_to: Callable[[Project], Any], back: str) -> Any:
    """Move a resource to the form's project (`move_to` does it), say so, and go `back`."""
    try:
        body = load_form(MoveSchema(), {"project": request.form.get("project", "")})
        move_to(target_project(body["project"], "admin"))
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"{what} moved to {body['project']}.")
    return redirect(back)
