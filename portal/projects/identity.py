"""Project memberships from the directory's groups or the OpenID provider's claim values.

A mapping is a `;`-separated list of `PROJECT:ROLE=GROUP` entries (`ldap_project_groups`:
GROUP is a group DN; `oidc_project_values`: a claim value), e.g.
`alpha:operator=cn=team-a,ou=groups,dc=example,dc=org`. At every sign-in the projects the
mapping names follow the person's groups: a membership with the highest role its groups map
to, none when no group maps to that project. Projects the mapping does not name are left to
the admins. A person the mapping puts in a project does not join `default` at first sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import marshmallow as ma
from sqlalchemy import select

from portal.admin.models import User
from portal.core.audit import record_audit
from portal.core.security import ROLE_RANK, ROLES
from portal.extensions import db
from portal.projects.models import Project, ProjectMember

ENTRY = re.compile(r"^(?P<project>[a-z0-9][a-z0-9-]{0,62}):(?P<role>\w+)=(?P<group>.+)$")


@dataclass(frozen=True)
class ProjectRoles:
    """What a mapping says of one person: a role per project, and every project it names."""

    roles: dict[str, str]
    managed: frozenset[str]


def parse_mapping(text: str | None) -> list[tuple[str, str, str]]:
    """(project, role, group) of each entry; ValueError naming a malformed one."""
    entries = []
    for item in (part.strip() for part in (text or "").split(";")):
        if not item:
            continue
        found = ENTRY.match(item)
        if found is None or found["role"] not in ROLES:
            raise ValueError(f"'{item}' is not PROJECT:ROLE=GROUP (ROLE: viewer, operator, admin).")
        entries.append((found["project"], found["role"], found["group"].strip()))
    return entries


def validate_mapping(text: str) -> None:
    """A setting's validator: every entry well formed."""
    try:
        parse_mapping(text)
    except ValueError as exc:
        raise ma.ValidationError(str(exc)) from None


def project_roles(
    text: str | None, held: Iterable[str], normalize: Callable[[str], str] = str
) -> ProjectRoles | None:
    """The person's role per project by the mapping `text` and the groups it `held`; None
    when no mapping is configured (memberships are then the admins' alone)."""
    try:
        entries = parse_mapping(text)
    except ValueError:
        return None  # refused when saved; a hand-edited database changes nothing
    if not entries:
        return None
    have = {normalize(group) for group in held}
    roles: dict[str, str] = {}
    for project, role, group in entries:
        if normalize(group) in have and ROLE_RANK[role] > ROLE_RANK.get(roles.get(project, ""), -1):
            roles[project] = role
    return ProjectRoles(roles, frozenset(project for project, _, _ in entries))


def sync_memberships(user: User, mapped: ProjectRoles) -> None:
    """Make the user's memberships of the mapped projects what the mapping says (audited)."""
    query = select(Project).where(Project.name.in_(mapped.managed)).order_by(Project.name)
    projects = list(db.session.scalars(query))
    for project in projects:
        member = db.session.scalar(
            select(ProjectMember).where(
                ProjectMember.project_id == project.id, ProjectMember.user_id == user.id
            )
        )
        role = mapped.roles.get(project.name)
        before = member.role if member else None
        if role == before:
            continue
        if member is None:
            db.session.add(ProjectMember(project_id=project.id, user_id=user.id, role=role))
        elif role is None:
            db.session.delete(member)
        else:
            member.role = role
        details = {"user": user.username, "from": before, "to": role, "source": user.source}
        record_audit("project.member.sync", f"project:{project.name}", details=details,
                     project_id=project.id)  # fmt: skip
