"""REST endpoints of projects: list, create and delete (global admins), show, change
(project admins), and members (project admins)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.security import check_role, require_role
from portal.extensions import db
from portal.projects import access, quotas, service
from portal.projects.models import Project
from portal.projects.schemas import (
    QUOTA_FIELDS,
    MemberAddSchema,
    MemberRoleSchema,
    MemberSchema,
    ProjectSchema,
    ProjectUpdateSchema,
)

blp = Blueprint(
    "projects", __name__, url_prefix="/api/v1/projects", description="Projects and members"
)


def _project(project_id: int, needed: str) -> Project:
    """The project, if the caller has `needed` in it; 404 if it cannot see it."""
    project = service.get_project(project_id)
    access.check_project(project.id, needed, f"No project with id {project_id}.")
    return project


def _shown(project: Project) -> Project:
    """The project with the caller's role and its quota use, for the answer."""
    project.role = access.caller_scope().role_in(project.id)  # type: ignore[attr-defined]
    project.usage = quotas.usage(project)  # type: ignore[attr-defined]
    return project


@blp.route("")
class Projects(MethodView):
    @require_role("viewer")
    @blp.response(200, ProjectSchema(many=True))
    def get(self) -> Any:
        """List the projects you are a member of (global admins: all), with quota use."""
        rows = db.session.scalars(service.projects_query(access.visible_project_ids()))
        return [_shown(project) for project in rows]

    @require_role("admin")
    @blp.arguments(ProjectSchema)
    @blp.response(201, ProjectSchema)
    def post(self, body: dict) -> Any:
        """Create a project (global admins)."""
        return _shown(service.create_project(body))


@blp.route("/<id:project_id>")
class ProjectItem(MethodView):
    @require_role("viewer")
    @blp.response(200, ProjectSchema)
    def get(self, project_id: int) -> Any:
        """Show a project with your role in it and its quota use."""
        return _shown(_project(project_id, "viewer"))

    @require_role("viewer")
    @blp.arguments(ProjectUpdateSchema)
    @blp.response(200, ProjectSchema)
    def patch(self, body: dict, project_id: int) -> Any:
        """Change a project's description (project admins) or quotas (global admins)."""
        project = _project(project_id, "admin")
        if QUOTA_FIELDS & set(body):
            check_role("admin")
        return _shown(service.update_project(project, body))

    @require_role("admin")
    @blp.response(204)
    def delete(self, project_id: int) -> None:
        """Delete a project that owns no host, application, gateway key or route."""
        service.delete_project(_project(project_id, "admin"))


@blp.route("/<id:project_id>/members")
class Members(MethodView):
    @require_role("viewer")
    @blp.response(200, MemberSchema(many=True))
    def get(self, project_id: int) -> Any:
        """List a project's members and their roles."""
        return service.members(_project(project_id, "viewer"))

    @require_role("viewer")
    @blp.arguments(MemberAddSchema)
    @blp.response(201, MemberSchema)
    def post(self, body: dict, project_id: int) -> Any:
        """Add a user to a project with a role (project admins)."""
        project = _project(project_id, "admin")
        return service.add_member(project, body["username"], body["role"])


@blp.route("/<id:project_id>/members/<id:user_id>")
class MemberItem(MethodView):
    @require_role("viewer")
    @blp.arguments(MemberRoleSchema)
    @blp.response(200, MemberSchema)
    def patch(self, body: dict, project_id: int, user_id: int) -> Any:
        """Change a member's role (project admins)."""
        project = _project(project_id, "admin")
        return service.change_member(project, service.get_member(project, user_id), body["role"])

    @require_role("viewer")
    @blp.response(204)
    def delete(self, project_id: int, user_id: int) -> None:
        """Remove a member from a project (project admins)."""
        project = _project(project_id, "admin")
        service.remove_member(project, service.get_member(project, user_id))
