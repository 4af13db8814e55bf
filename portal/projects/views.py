"""Pages of projects: the list with quota use, a project with its members and quotas.

Every change goes through portal.projects.service (audited there, as the API's are), with the
API's schemas and the API's access rules: global admins create projects, set quotas and delete
empty ones; a project's admins change its description and its members.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.core.errors import SpectrError
from portal.core.security import ROLES, check_role, require_principal
from portal.projects import access, quotas, service
from portal.projects.models import DEFAULT_PROJECT, Project
from portal.projects.schemas import (
    LIMITS,
    MemberAddSchema,
    MemberRoleSchema,
    ProjectSchema,
    ProjectUpdateSchema,
)
from portal.web.auth import page_project_role, page_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("projects_pages", __name__, url_prefix="/projects")
QUOTAS = tuple(LIMITS)
# What each quota is called on the pages, in the order they show.
QUOTA_LABELS = {
    "gpu_limit": "GPU quota",
    "gpu_memory_limit_mib": "GPU memory quota (MiB)",
    "application_limit": "Application quota",
    "gateway_rpm_limit": "Gateway requests per minute",
    "gateway_tokens_per_day_limit": "Gateway tokens per day",
    "gateway_tokens_per_month_limit": "Gateway tokens per month",
}


def _project(project_id: int, needed: str) -> Project:
    """The project, if the caller has `needed` in it; 404 as a missing one if it cannot see it."""
    project = service.get_project(project_id)
    access.check_project(project.id, needed, f"No project with id {project_id}.")
    return project


def _to_detail(project_id: int, anchor: str = "") -> Any:
    return redirect(url_for("projects_pages.detail", project_id=project_id) + anchor)


@bp.get("")
@page_role("viewer")
def index() -> Any:
    rows = quotas.usage_documents(access.visible_project_ids())
    return render_template(
        "projects/index.html", rows=rows, scope=access.caller_scope(), quota_labels=QUOTA_LABELS
    )


@bp.post("")
@page_role("admin")
def create() -> Any:
    raw = {"name": request.form.get("name", "").strip(),
           "description": request.form.get("description", ""), **_quota_fields()}  # fmt: skip
    try:
        project = service.create_project(load_form(ProjectSchema(), raw))
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("projects_pages.index") + "#new-project")
    flash(f"Project {project.name} created.")
    return _to_detail(project.id)


def _quota_fields() -> dict[str, Any]:
    """The quota fields of a form: an empty one is no limit (None). Per-model GPU limits come
    as lines of `MODEL = COUNT`; a line without `=` is kept whole, for the schema to refuse."""
    fields: dict[str, Any] = {
        name: request.form.get(name, "").strip() or None for name in QUOTAS if name in request.form
    }
    if "gpu_model_limits" in request.form:
        lines = [line.strip() for line in request.form["gpu_model_limits"].splitlines()]
        pairs = [
            line.rpartition("=")[::2] if "=" in line else (line, None) for line in lines if line
        ]
        fields["gpu_model_limits"] = {
            model.strip(): count and count.strip() for model, count in pairs
        } or None
    return fields


@bp.get("/<id:project_id>")
@page_role("viewer")
def detail(project_id: int) -> Any:
    project = _project(project_id, "viewer")
    return render_template(
        "projects/detail.html",
        project=project,
        role=access.caller_scope().role_in(project.id),
        usage=quotas.usage(project),
        quota_labels=QUOTA_LABELS,
        owned=service.owned_counts(project),
        members=service.members(project),
        roles=ROLES,
        is_default=project.name == DEFAULT_PROJECT,
    )


@bp.post("/<id:project_id>")
@page_project_role("admin")
def update(project_id: int) -> Any:
    """Save the description (project admins) and, from a global admin, the quotas."""
    project = _project(project_id, "admin")
    raw: dict[str, Any] = {"description": request.form.get("description", "")}
    if any(name in request.form for name in (*QUOTAS, "gpu_model_limits")):
        check_role("admin")  # quotas are the fleet's to share out: global admins only
        raw.update(_quota_fields())
    try:
        service.update_project(project, load_form(ProjectUpdateSchema(), raw))
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"Project {project.name} saved.")
    return _to_detail(project.id, "#settings")


@bp.post("/<id:project_id>/delete")
@page_role("admin")
def delete(project_id: int) -> Any:
    project = _project(project_id, "admin")
    name = project.name
    try:
        service.delete_project(project)
    except SpectrError as exc:
        flash_error(exc)
        return _to_detail(project_id)
    flash(f"Project {name} deleted.")
    return redirect(url_for("projects_pages.index"))


@bp.post("/<id:project_id>/members")
@page_project_role("admin")
def add_member(project_id: int) -> Any:
    project = _project(project_id, "admin")
    raw = {"username": request.form.get("username", "").strip(),
           "role": request.form.get("role", "")}  # fmt: skip
    try:
        body = load_form(MemberAddSchema(), raw)
        service.add_member(project, body["username"], body["role"])
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"{body['username']} added to {project.name} as {body['role']}.")
    return _to_detail(project.id, "#members")


@bp.post("/<id:project_id>/members/<id:user_id>")
@page_project_role("admin")
def change_member(project_id: int, user_id: int) -> Any:
    project = _project(project_id, "admin")
    member = service.get_member(project, user_id)
    try:
        body = load_form(MemberRoleSchema(), {"role": request.form.get("role", "")})
        service.change_member(project, member, body["role"])
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"{member.user.username} is now {body['role']} in {project.name}.")
    return _to_detail(project.id, "#members")


@bp.post("/<id:project_id>/members/<id:user_id>/remove")
@page_project_role("admin")
def remove_member(project_id: int, user_id: int) -> Any:
    project = _project(project_id, "admin")
    member = service.get_member(project, user_id)
    name = member.user.username
    service.remove_member(project, member)
    flash(f"{name} removed from {project.name}.")
    if name == require_principal().username and not access.caller_scope().everything:
        return redirect(url_for("projects_pages.index"))  # one's own membership: page is gone
    return _to_detail(project.id, "#members")
