"""Projects and their members: create, change, delete when empty; add, change, remove members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from portal.admin.models import User
from portal.apps.models import Application
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound
from portal.extensions import db
from portal.hosts.models import Host
from portal.projects.models import DEFAULT_PROJECT, Project, ProjectMember, default_project_id
from portal.proxy.config_document import notify_proxies, record_config_change
from portal.proxy.models import GatewayKey, ProxyRoute

OWNED = {"hosts": Host, "applications": Application, "gateway_keys": GatewayKey,
         "routes": ProxyRoute}  # fmt: skip


def projects_query(project_ids: list[int] | None) -> Any:
    """A select() of projects by name: these ids, or every project (None)."""
    query = select(Project).order_by(Project.name)
    if project_ids is not None:
        query = query.where(Project.id.in_(project_ids))
    return query


def get_project(project_id: int) -> Project:
    project = db.session.get(Project, project_id)
    if project is None:
        raise NotFound(f"No project with id {project_id}.")
    return project


def create_project(fields: dict[str, Any]) -> Project:
    if db.session.scalar(select(Project.id).where(Project.name == fields["name"])):
        raise Conflict(f"A project named '{fields['name']}' already exists.", {"name": ["taken"]})
    project = Project(**fields)
    db.session.add(project)
    db.session.flush()
    record_audit("project.create", f"project:{project.name}", details=fields, project_id=project.id)
    db.session.commit()
    return project


# Quotas the proxies enforce: a change of one is a change of their config document.
GATEWAY_QUOTAS = {"gateway_rpm_limit", "gateway_tokens_per_day_limit",
                  "gateway_tokens_per_month_limit"}  # fmt: skip


def update_project(project: Project, changes: dict[str, Any]) -> Project:
    for name, value in changes.items():
        setattr(project, name, value)
    record_audit(
        "project.update", f"project:{project.name}", details=changes, project_id=project.id
    )
    gateway = GATEWAY_QUOTAS & set(changes)
    if gateway:
        record_config_change(f"project {project.name}: {', '.join(sorted(gateway))}")
    db.session.commit()
    if gateway:
        notify_proxies()
    return project


def owned_counts(project: Project) -> dict[str, int]:
    """How many of each kind of resource the project owns."""
    counts = {}
    for name, model in OWNED.items():
        query = select(func.count()).select_from(model).where(model.project_id == project.id)
        counts[name] = db.session.scalar(query) or 0
    return counts


def delete_project(project: Project) -> None:
    """Delete a project that owns nothing; `default` stays."""
    if project.name == DEFAULT_PROJECT:
        raise Conflict("The 'default' project cannot be deleted.")
    counts = {name: count for name, count in owned_counts(project).items() if count}
    if counts:
        owned = ", ".join(f"{count} {name}" for name, count in counts.items())
        raise Conflict(f"Project '{project.name}' still owns {owned}; move or delete them first.",
                       counts)  # fmt: skip
    record_audit("project.delete", f"project:{project.name}", project_id=project.id)
    db.session.delete(project)
    db.session.commit()


def members(project: Project) -> list[ProjectMember]:
    query = select(ProjectMember).join(User, ProjectMember.user_id == User.id)
    query = query.where(ProjectMember.project_id == project.id).order_by(User.username)
    return list(db.session.scalars(query))


def get_member(project: Project, user_id: int) -> ProjectMember:
    member = db.session.scalar(
        select(ProjectMember).where(
            ProjectMember.project_id == project.id, ProjectMember.user_id == user_id
        )
    )
    if member is None:
        raise NotFound(f"User {user_id} is not a member of project '{project.name}'.")
    return member


def add_member(project: Project, username: str, role: str) -> ProjectMember:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named '{username}'.", {"username": ["no such user"]})
    taken = select(ProjectMember.id).where(
        ProjectMember.project_id == project.id, ProjectMember.user_id == user.id
    )
    if db.session.scalar(taken):
        raise Conflict(f"'{username}' is already a member of '{project.name}'.")
    member = ProjectMember(project_id=project.id, user_id=user.id, role=role)
    db.session.add(member)
    record_audit("project.member.add", f"project:{project.name}",
                 details={"user": username, "role": role}, project_id=project.id)  # fmt: skip
    db.session.commit()
    return member


def change_member(project: Project, member: ProjectMember, role: str) -> ProjectMember:
    details = {"user": member.user.username, "from": member.role, "to": role}
    member.role = role
    record_audit(
        "project.member.update", f"project:{project.name}", details=details, project_id=project.id
    )
    db.session.commit()
    return member


def remove_member(project: Project, member: ProjectMember) -> None:
    record_audit("project.member.remove", f"project:{project.name}",
                 details={"user": member.user.username}, project_id=project.id)  # fmt: skip
    db.session.delete(member)
    db.session.commit()


def join_default_project(user: User) -> None:
    """A new user joins `default` with their global role: an installation that does not use
    projects keeps working as before. An admin removes them there to confine them elsewhere."""
    project_id = default_project_id(db.session.connection())
    db.session.add(ProjectMember(project_id=project_id, user_id=user.id, role=user.role))
