"""Host page actions of projects: share a host with another project, end a share, move the
host to another project. The same services, schemas and access rules as the API's
(portal/projects/sharing_api.py): the caller is admin of the host's project (and, to move it,
of the target project)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from portal.core.errors import SpectrError
from portal.hosts.service import visible_host
from portal.projects import moving, sharing
from portal.projects.access import target_project
from portal.projects.schemas import HostShareAddSchema, MoveSchema
from portal.web.auth import page_project_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("project_host_pages", __name__, url_prefix="/hosts")


def _back(host_id: int) -> Any:
    return redirect(url_for("hosts_pages.detail", host_id=host_id) + "#host-projects")


@bp.post("/<id:host_id>/shares")
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


@bp.post("/<id:host_id>/shares/<string:project>/end")
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


@bp.post("/<id:host_id>/move")
@page_project_role("admin")
def move(host_id: int) -> Any:
    host = visible_host(host_id, "admin")
    try:
        body = load_form(MoveSchema(), {"project": request.form.get("project", "")})
        moving.move_host(host, target_project(body["project"], "admin"))
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"{host.name} moved to {body['project']}, with its project's applications.")
    return _back(host_id)
