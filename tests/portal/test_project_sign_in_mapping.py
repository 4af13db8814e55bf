"""Project memberships from directory groups and OpenID claim values, at every sign-in.

The people come in through `provision` as the directory and the provider hand them over (their
sign-in against real servers is tested in test_directory_sign_in.py, test_oidc_sign_in.py and
tests/browser/test_project_isolation.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from portal.admin.directory import normalize_dn
from portal.admin.sign_in import ExternalIdentity, provision
from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.projects.identity import project_roles
from portal.projects.models import DEFAULT_PROJECT, Project, ProjectMember
from tests.portal.conftest import ApiClient
from tests.portal.projects_support import make_project

MAPPING = (
    "alpha:operator=cn=Team-A,ou=groups,dc=example,dc=org; "
    "alpha:admin=cn=leads,ou=groups,dc=example,dc=org; "
    "beta:viewer=cn=auditors,ou=groups,dc=example,dc=org"
)


def _memberships(user_id: int) -> dict[str, str]:
    query = (
        select(Project.name, ProjectMember.role)
        .join(Project, ProjectMember.project_id == Project.id)
        .where(ProjectMember.user_id == user_id)
    )
    return dict(db.session.execute(query).all())


def _sign_in(groups: list[str]) -> Any:
    mapped = project_roles(MAPPING, groups, normalize_dn)
    user = provision(ExternalIdentity("ldap", "uid=ann,dc=example,dc=org", "ann", "viewer", mapped))
    db.session.commit()
    return user


def test_mapped_projects_follow_the_groups_at_every_sign_in(app: Any) -> None:
    for name in ("alpha", "beta", "gamma"):
        make_project(name)
    user = _sign_in(["cn=team-a, ou=groups, dc=example, dc=org"])  # DNs compare as a directory's
    assert _memberships(user.id) == {"alpha": "operator"}  # not `default`: the mapping placed her

    gamma = db.session.scalar(select(Project).where(Project.name == "gamma"))
    db.session.add(ProjectMember(project_id=gamma.id, user_id=user.id, role="viewer"))
    db.session.commit()
    both = ["cn=team-a,ou=groups,dc=example,dc=org", "cn=leads,ou=groups,dc=example,dc=org",
            "cn=auditors,ou=groups,dc=example,dc=org"]  # fmt: skip
    _sign_in(both)
    assert _memberships(user.id) == {"alpha": "admin", "beta": "viewer", "gamma": "viewer"}
    _sign_in(["cn=auditors,ou=groups,dc=example,dc=org"])
    # Alpha and beta follow the groups; gamma, which the mapping does not name, stays.
    assert _memberships(user.id) == {"beta": "viewer", "gamma": "viewer"}
    synced = select(AuditEvent).where(AuditEvent.action == "project.member.sync")
    synced = synced.order_by(AuditEvent.id)
    changes = [(e.details["from"], e.details["to"]) for e in db.session.scalars(synced)]
    assert changes == [(None, "operator"), ("operator", "admin"), (None, "viewer"),
                       ("admin", None)]  # fmt: skip


def test_a_person_no_mapping_places_joins_default(app: Any) -> None:
    make_project("alpha")
    user = _sign_in(["cn=someone-else,dc=example,dc=org"])
    assert _memberships(user.id) == {DEFAULT_PROJECT: "viewer"}


def test_a_malformed_mapping_is_refused_when_saved(api_as: Callable[[str], ApiClient]) -> None:
    admin = api_as("admin")
    bad = admin.patch("/api/v1/settings", json={"oidc_project_values": "alpha=team-a"})
    assert bad.status_code == 422
    assert "PROJECT:ROLE=GROUP" in str(bad.json["details"]["oidc_project_values"])
    wrong_role = admin.patch("/api/v1/settings", json={"ldap_project_groups": "alpha:owner=cn=x"})
    assert wrong_role.status_code == 422
    good = admin.patch("/api/v1/settings", json={"oidc_project_values": "alpha:viewer=team-a"})
    assert good.status_code == 200
