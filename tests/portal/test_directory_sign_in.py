"""Sign-in through a real OpenLDAP (Debian's slapd on 127.0.0.1, TLS with a test CA), through
the login page and the admin's test action; no mocks.

The directory: alice in spectr-admins; bob in ops-team, which is inside spectr-operators (a
nested group); carol in no mapped group; dave, disabled later by an attribute the user filter
excludes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.admin import directory, service, sign_in
from portal.admin.models import User
from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.settings.service import update_settings
from tests.collection.tls import TestCA
from tests.portal.conftest import ApiClient
from tests.support import slapd
from tests.support.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, Slapd

PASSWORDS = {"alice": "alice-directory-1", "bob": "bob-directory-1", "carol": "carol-dir-1"}
USER_FILTER = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"


@pytest.fixture(scope="module")
def test_ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def ldap_server(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Slapd]:
    with slapd.seeded(tmp_path_factory.mktemp("slapd"), test_ca) as server:
        dns = {uid: server.add_person(uid, password) for uid, password in PASSWORDS.items()}
        server.dns = dns  # type: ignore[attr-defined]
        team = server.add_group("ops-team", [dns["bob"]])
        server.add_group("spectr-operators", [team])
        server.add_group("spectr-admins", [dns["alice"]])
        server.add_group("other", [dns["carol"]])
        yield server


def _group(name: str) -> str:
    return f"cn={name},ou=groups,{BASE}"


def _configure(server: Slapd, **overrides: Any) -> None:
    values = {
        "ldap_enabled": True,
        "ldap_url": server.ldap_url,
        "ldap_start_tls": True,
        "ldap_ca_certificate": server.ca_pem,
        "ldap_bind_dn": SERVICE_DN,
        "ldap_bind_password": SERVICE_PASSWORD,
        "ldap_user_base": f"ou=people,{BASE}",
        "ldap_user_filter": USER_FILTER,
        "ldap_login_attribute": "uid",
        "ldap_group_mode": "member",
        "ldap_group_base": f"ou=groups,{BASE}",
        "ldap_admin_groups": _group("spectr-admins"),
        "ldap_operator_groups": f"{_group('spectr-operators')}; cn=unused,{BASE}",
        **overrides,
    }
    update_settings(values, "test")


@pytest.fixture
def directory_app(app: Flask, ldap_server: Slapd) -> Flask:
    _configure(ldap_server)
    return app


def _sign_in(client: FlaskClient, username: str, password: str) -> Any:
    return client.post("/login", data={"username": username, "password": password})


def _last_login_audit(username: str) -> AuditEvent:
    return db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "session.login", AuditEvent.target == f"user:{username}")
        .order_by(AuditEvent.id.desc())
    ).first()


def test_directory_users_are_created_at_first_sign_in_with_the_role_of_their_groups(
    directory_app: Flask, ldap_server: Slapd
) -> None:
    browser = directory_app.test_client()
    assert _sign_in(browser, "bob", PASSWORDS["bob"]).status_code == 302
    me = browser.get("/api/v1/me").get_json()
    assert (me["username"], me["role"], me["source"]) == ("bob", "operator", "ldap")
    bob = db.session.scalar(select(User).filter_by(username="bob"))
    assert bob.external_id == f"uid=bob,ou=people,{BASE}"  # nested: ops-team in operators
    assert _last_login_audit("bob").details == {"method": "ldap"}

    admin = directory_app.test_client()
    assert _sign_in(admin, "alice", PASSWORDS["alice"]).status_code == 302
    assert admin.get("/api/v1/me").get_json()["role"] == "admin"


def test_a_role_follows_the_directory_groups_at_each_sign_in(
    directory_app: Flask, ldap_server: Slapd
) -> None:
    assert _sign_in(directory_app.test_client(), "bob", PASSWORDS["bob"]).status_code == 302
    _configure(ldap_server, ldap_operator_groups="", ldap_viewer_groups=_group("ops-team"))
    browser = directory_app.test_client()
    assert _sign_in(browser, "bob", PASSWORDS["bob"]).status_code == 302
    assert browser.get("/api/v1/me").get_json()["role"] == "viewer"
    sync = db.session.scalars(select(AuditEvent).filter_by(action="user.role.sync")).all()
    assert sync[-1].details == {"from": "operator", "to": "viewer", "source": "ldap"}


@pytest.mark.parametrize(
    ("username", "password", "reason", "shown"),
    [
        ("bob", "not-his-password", "wrong password", "Wrong user name or password."),
        ("nobody", "whatever-1234", "unknown user", "Wrong user name or password."),
        ("bob", "", "wrong password", "Wrong user name or password."),
        ("carol", PASSWORDS["carol"], "no role", "None of your groups gives you a role"),
    ],
)
def test_each_refusal_has_its_audit_record(
    directory_app: Flask, username: str, password: str, reason: str, shown: str
) -> None:
    answer = _sign_in(directory_app.test_client(), username, password)
    assert answer.status_code == 401
    assert shown in answer.get_data(as_text=True)
    event = _last_login_audit(username)
    assert event.outcome == f"failed ({reason})"
    assert event.details["method"] == "ldap"
    assert db.session.scalar(select(User).filter_by(username=username)) is None


def test_a_user_the_directory_disables_is_deactivated_and_signed_out(
    directory_app: Flask, ldap_server: Slapd
) -> None:
    dn = ldap_server.add_person(f"dave{uuid.uuid4().hex[:6]}", "dave-directory-1")
    uid = dn.split(",")[0].split("=")[1]
    ldap_server.set_attribute(_group("spectr-admins"), "member", [ldap_server.dns["alice"], dn])
    browser = directory_app.test_client()
    assert _sign_in(browser, uid, "dave-directory-1").status_code == 302
    assert browser.get("/api/v1/me").status_code == 200

    ldap_server.set_attribute(dn, "employeeType", ["disabled"])
    assert sign_in.refresh_directory_users() == 1  # the periodic check
    assert browser.get("/api/v1/me").status_code == 401
    answer = _sign_in(directory_app.test_client(), uid, "dave-directory-1")
    assert answer.status_code == 401
    assert "disabled in the directory" in answer.get_data(as_text=True)
    assert _last_login_audit(uid).outcome == "failed (disabled)"
    user = db.session.scalar(select(User).filter_by(username=uid))
    assert user.active is False


def test_ldaps_and_the_memberof_attribute_work_too(
    directory_app: Flask, ldap_server: Slapd
) -> None:
    _configure(ldap_server, ldap_url=ldap_server.ldaps_url, ldap_group_mode="memberof")
    browser = directory_app.test_client()
    assert _sign_in(browser, "alice", PASSWORDS["alice"]).status_code == 302
    assert browser.get("/api/v1/me").get_json()["role"] == "admin"


def test_local_users_stay_and_sso_required_keeps_only_admins_on_passwords(
    directory_app: Flask, create_user: Callable[..., Any]
) -> None:
    viewer, admin = create_user("viewer"), create_user("admin")
    from tests.portal.conftest import PASSWORD

    update_settings({"sso_required": True}, "test")
    refused = _sign_in(directory_app.test_client(), viewer.username, PASSWORD)
    assert refused.status_code == 401
    assert "for admins only" in refused.get_data(as_text=True)
    assert _last_login_audit(viewer.username).outcome == "failed (sso required)"
    assert _sign_in(directory_app.test_client(), admin.username, PASSWORD).status_code == 302
    # A directory user cannot be given a local password by mistake.
    _sign_in(directory_app.test_client(), "bob", PASSWORDS["bob"])
    bob = db.session.scalar(select(User).filter_by(username="bob"))
    with pytest.raises(Exception, match="directory"):
        service.update_user(bob, password="a-local-password-1")


def _admin_api(directory_app: Flask, create_user: Callable[..., Any]) -> ApiClient:
    _, token = service.create_token(create_user("admin"), "t", 1)
    return ApiClient(directory_app.test_client(), token)


def test_the_test_action_says_which_step_failed(
    directory_app: Flask, ldap_server: Slapd, create_user: Callable[..., Any], tmp_path: Path
) -> None:
    api = _admin_api(directory_app, create_user)
    good = api.post("/api/v1/sign-in/directory/test", json={"username": "bob"}).get_json()
    assert good["ok"] is True
    assert good["user"]["role"] == "operator"
    assert any("StartTLS done" in step for step in good["steps"])

    wrong = api.post(
        "/api/v1/sign-in/directory/test", json={"username": "bob", "password": "nope-nope"}
    ).get_json()
    assert (wrong["ok"], wrong["reason"]) == (False, "wrong_password")
    unknown = api.post("/api/v1/sign-in/directory/test", json={"username": "zed"}).get_json()
    assert unknown["reason"] == "unknown_user"
    assert "uid=zed" in unknown["message"]

    _configure(ldap_server, ldap_bind_password="wrong-service-password")
    bind = api.post("/api/v1/sign-in/directory/test", json={}).get_json()
    assert bind["reason"] == "service_bind_failed"
    assert "invalidCredentials" in bind["message"]
    assert "wrong-service-password" not in str(bind)

    _configure(ldap_server, ldap_ca_certificate=TestCA().cert_pem)
    untrusted = api.post("/api/v1/sign-in/directory/test", json={}).get_json()
    assert untrusted["reason"] == "certificate_untrusted"
    events = db.session.scalars(select(AuditEvent).filter_by(action="sign_in.directory.test"))
    assert [e.outcome for e in events][-1] == "failed (certificate_untrusted)"


def test_an_expired_directory_certificate_is_named_at_sign_in(
    directory_app: Flask, test_ca: TestCA, tmp_path: Path
) -> None:
    expired = Slapd(tmp_path / "expired", test_ca, expired_certificate=True).start()
    try:
        expired.seed()
        expired.add_person("erin", "erin-directory-1")
        _configure(expired)
        answer = _sign_in(directory_app.test_client(), "erin", "erin-directory-1")
        assert answer.status_code == 401
        assert "has expired" in answer.get_data(as_text=True)
        assert _last_login_audit("erin").outcome == "failed (certificate expired)"
    finally:
        expired.stop()


def test_the_active_directory_filter_asks_the_server_to_follow_nesting() -> None:
    # No Active Directory can run here: this checks the filter sent, not AD's answer.
    config = directory.DirectoryConfig(url="ldap://unused", group_mode="ad_nested")
    seen: list[str] = []

    class Recorder:
        result = {"result": 0}
        entries: list = []

        def search(self, base: str, query: str, *args: Any, **kwargs: Any) -> bool:
            seen.append(query)
            return True

    directory._groups(Recorder(), config, "CN=Bob (IT),OU=People,DC=corp", {})  # type: ignore[arg-type]
    assert seen == [r"(member:1.2.840.113556.1.4.1941:=CN=Bob \28IT\29,OU=People,DC=corp)"]
