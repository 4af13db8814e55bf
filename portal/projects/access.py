"""What the caller of this request may see and do, project by project.

A global admin has the admin role in every project. Anyone else has the role of their
membership in each project they belong to. A token scoped to one project reaches that project
only, and a token with a role acts with at most that role. A resource of a project the caller
cannot see answers 404, as one that does not exist: its existence does not leak.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import g
from sqlalchemy import ColumnElement, false, or_, select, true

from portal.admin.models import User
from portal.core.errors import Forbidden, NotFound
from portal.core.security import ROLE_RANK, lower_role, require_principal
from portal.extensions import db
from portal.projects.models import DEFAULT_PROJECT, Project, ProjectMember, default_project_id

F = TypeVar("F", bound=Callable[..., Any])
# What services take to filter rows by project: a project-id column -> a WHERE clause.
ProjectFilter = Callable[[Any], ColumnElement[bool]]


def every_project(column: Any) -> ColumnElement[bool]:
    """The ProjectFilter of a caller that sees everything (the CLI, workers)."""
    return true()


@dataclass(frozen=True)
class ProjectScope:
    """The caller's role in each project it can see; `everything` for an unscoped admin."""

    everything: bool = False
    roles: dict[int, str] = field(default_factory=dict)

    def role_in(self, project_id: int) -> str | None:
        return "admin" if self.everything else self.roles.get(project_id)

    def can(self, project_id: int, needed: str) -> bool:
        role = self.role_in(project_id)
        return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]

    def project_ids(self, needed: str = "viewer") -> list[int] | None:
        """Ids of the projects where the caller has `needed`; None when it is every project."""
        if self.everything:
            return None
        return sorted(
            pid for pid, role in self.roles.items() if ROLE_RANK[role] >= ROLE_RANK[needed]
        )


def caller_scope() -> ProjectScope:
    """The scope of the authenticated caller (401 when anonymous), worked out once a request."""
    if "project_scope" not in g:
        g.project_scope = _scope_of_principal()
    return g.project_scope


def _scope_of_principal() -> ProjectScope:
    principal = require_principal()
    global_role = principal.user_role
    if global_role is None:  # a Principal made elsewhere (the CLI, a test): ask the database
        user = db.session.get(User, principal.user_id)
        global_role = user.role if user is not None else principal.role
    cap = principal.token_role
    if global_role == "admin":
        if principal.project_id is None and cap in (None, "admin"):
            return ProjectScope(everything=True)
        ids = [principal.project_id] if principal.project_id else _all_project_ids()
        return ProjectScope(roles={pid: cap or "admin" for pid in ids})
    memberships = db.session.execute(
        select(ProjectMember.project_id, ProjectMember.role).where(
            ProjectMember.user_id == principal.user_id
        )
    ).all()
    roles = {pid: lower_role(role, cap) if cap else role for pid, role in memberships}
    if principal.project_id is not None:
        roles = {pid: role for pid, role in roles.items() if pid == principal.project_id}
    return ProjectScope(roles=roles)


def _all_project_ids() -> list[int]:
    return list(db.session.scalars(select(Project.id)))


def project_role(needed: str) -> Callable[[F], F]:
    """Decorate a view of project resources: 401 when anonymous, 403 unless the caller has
    `needed` in some project. The view then checks the resource's own project (`checked`)."""
    if needed not in ROLE_RANK:
        raise ValueError(f"unknown role {needed!r}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = caller_scope()
            if scope.project_ids(needed) == []:
                raise Forbidden(f"This action needs the '{needed}' role in a project.")
            return view(*args, **kwargs)

        wrapper.required_role = needed  # type: ignore[attr-defined]
        wrapper.project_scoped = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def checked(resource: Any, needed: str, missing: str) -> Any:
    """Return `resource` if the caller has `needed` in its project: 404 (with the `missing`
    message of a resource that does not exist) when the caller cannot see that project, 403
    when its role there is lower. The project is noted for the audit record."""
    scope = caller_scope()
    role = scope.role_in(resource.project_id)
    if role is None:
        raise NotFound(missing)
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        raise Forbidden(f"This action needs the '{needed}' role in this project; you are '{role}'.")
    g.project_id = resource.project_id
    # Every project this request acted in: an operation over hosts of several projects
    # belongs to none of them (see `acted_project_id`).
    g.acted_projects = g.get("acted_projects", frozenset()) | {resource.project_id}
    return resource


def acted_project_id() -> int | None:
    """The one project this request acted in (None: none, or several)."""
    acted = g.get("acted_projects", frozenset())
    return next(iter(acted)) if len(acted) == 1 else None


def owning_project_id(project_id: int | None) -> int:
    """The project a row belongs to: its own, or `default` for one without a project (an
    operation or event of the whole fleet), as everything without a project lands there."""
    return project_id if project_id is not None else _default_id()


def _default_id() -> int:
    """`default`'s id, looked up once a request (a page filters a dozen queries by it)."""
    if "default_project_id" not in g:
        g.default_project_id = default_project_id(db.session.connection())
    return g.default_project_id


def checked_in_project(resource: Any, project_id: int | None, needed: str, missing: str) -> Any:
    """`checked` for a row whose project may be None (counted as `default`'s)."""
    checked(_ProjectRef(owning_project_id(project_id)), needed, missing)
    return resource


def project_clause(
    column: Any, needed: str = "viewer", unowned_in_default: bool = True
) -> ColumnElement[bool]:
    """A WHERE clause: `column` (a project id) is one of the caller's projects (with `needed`).
    Rows without a project count as `default`'s, unless `unowned_in_default` is off (audit
    records of users and settings: global admins only). `column` None: rows of no project."""
    ids = visible_project_ids(needed)
    if ids is None:
        return true()
    sees_unowned = unowned_in_default and _default_id() in ids
    if column is None:  # asked of rows that have no project at all
        return true() if sees_unowned else false()
    if not ids:
        return false()
    clause = column.in_(ids)
    return or_(clause, column.is_(None)) if sees_unowned else clause


def can(project_id: int | None, needed: str) -> bool:
    """Whether the caller has `needed` in the project (None: `default`); for pages' buttons."""
    return caller_scope().can(owning_project_id(project_id), needed)


def can_somewhere(needed: str) -> bool:
    """Whether the caller has `needed` in any project (a page's "add" form)."""
    return caller_scope().project_ids(needed) != []


def visible_project_ids(needed: str = "viewer") -> list[int] | None:
    """The caller's projects (where it has `needed`) for filtering lists; None: all of them."""
    return caller_scope().project_ids(needed)


def target_project(name: str | None, needed: str) -> Project:
    """The project a new resource goes to: the named one, else the caller's only project,
    else `default`; 404 when the caller cannot see it, 403 when its role there is lower."""
    ids = caller_scope().project_ids("viewer")
    if name is None and ids is not None and len(ids) == 1:
        project = db.session.get(Project, ids[0])
    elif name is None or name == DEFAULT_PROJECT:
        name = DEFAULT_PROJECT
        project = db.session.get(Project, default_project_id(db.session.connection()))
    else:
        project = db.session.scalar(select(Project).where(Project.name == name))
    missing = f"No project named '{name}'."
    if project is None:
        raise NotFound(missing, {"project": [missing]})
    check_project(project.id, needed, missing)
    return project


def check_project(project_id: int, needed: str, missing: str) -> None:
    """`checked` for a project itself."""
    checked(_ProjectRef(project_id), needed, missing)


@dataclass(frozen=True)
class _ProjectRef:
    """A project seen as a resource of itself, for `checked`."""

    project_id: int


def token_scope(project: str | None, role: str | None) -> tuple[int | None, str | None]:
    """Check the scope asked for a new API token of the caller: a project it can see, a role
    at most its own (there). A caller on a scoped token makes tokens of that scope only."""
    principal = require_principal()
    if project is None and principal.project_id is not None:
        project = db.session.get(Project, principal.project_id).name  # type: ignore[union-attr]
    if project is None:
        if role is not None and not principal.has_role(role):
            raise Forbidden(f"A token's role is at most yours: '{principal.role}'.")
        return None, role or principal.token_role
    found = target_project(project, "viewer")
    own = caller_scope().role_in(found.id) or "viewer"
    if role is not None and ROLE_RANK[role] > ROLE_RANK[own]:
        raise Forbidden(f"A token's role is at most yours in '{found.name}': '{own}'.")
    return found.id, role or principal.token_role


def projects_with(needed: str) -> list[Project]:
    """The projects where the caller has `needed`, by name (a form's project choice)."""
    ids = visible_project_ids(needed)
    query = select(Project).order_by(Project.name)
    if ids is not None:
        query = query.where(Project.id.in_(ids))
    return list(db.session.scalars(query))


def project_names() -> dict[int, str]:
    """Names of the caller's projects by id, once a request (pages show a row's project)."""
    if "project_names" not in g:
        g.project_names = {project.id: project.name for project in projects_with("viewer")}
    return g.project_names


def audit_scope(column: Any) -> ColumnElement[bool]:
    """The ProjectFilter of audit records: those of the projects the caller administers; a
    record of no project (users, settings, sign-in) is for global admins only."""
    return project_clause(column, "admin", unowned_in_default=False)
