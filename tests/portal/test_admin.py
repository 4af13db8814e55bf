"""Users, roles, API tokens, sessions with CSRF, and the audit trail."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from portal.admin import service
from portal.admin.models import ApiToken, User
from portal.core.audit import AuditEvent
from portal.core.security import hash_token
from portal.core.timeutil import utcnow
from portal.extensions import db
from tests.portal.conftest import PASSWORD


def test_passwords_are_stored_as_argon2_hashes(any_db_app, create_user):
    user = create_user("viewer")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert service.authenticate_password(user.username, PASSWORD).id == user.id
    assert service.authenticate_password(user.username, "wrong password!") is None
    assert service.authenticate_password("nobody", PASSWORD) is None


def test_admin_manages_users_and_others_cannot(api_as):
    admin = api_as("admin")
    created = admin.post(
        "/api/v1/users",
        json={"username": "alice", "password": "long enough pw", "role": "operator"},
    )
    assert created.status_code == 201
    assert "password" not in created.get_json()
    user_id = created.get_json()["id"]
    assert (
        admin.patch(f"/api/v1/users/{user_id}", json={"role": "viewer"}).get_json()["role"]
        == "viewer"
    )
    assert api_as("operator").get("/api/v1/users").status_code == 403
    assert admin.delete(f"/api/v1/users/{user_id}").status_code == 204
    assert admin.get(f"/api/v1/users/{user_id}").status_code == 404


def test_user_input_errors_name_the_field(api_as):
    admin = api_as("admin")
    short = admin.post("/api/v1/users", json={"username": "bob", "password": "short"})
    assert short.status_code == 422 and "password" in short.get_json()["details"]
    role = admin.post(
        "/api/v1/users", json={"username": "bob", "password": "long enough pw", "role": "king"}
    )
    assert role.status_code == 422 and "role" in role.get_json()["details"]
    admin.post("/api/v1/users", json={"username": "bob", "password": "long enough pw"})
    taken = admin.post("/api/v1/users", json={"username": "bob", "password": "long enough pw"})
    assert taken.status_code == 409


def test_token_is_shown_once_and_stored_hashed(api_as):
    viewer = api_as("viewer")
    created = viewer.post("/api/v1/tokens", json={"name": "ci", "expires_in_days": 5}).get_json()
    plaintext = created["token"]
    assert plaintext.startswith("spectr_")
    stored = db.session.get(ApiToken, created["id"])
    assert stored.token_hash == hash_token(plaintext)
    assert all("token" not in token for token in viewer.get("/api/v1/tokens").get_json())
    assert (
        viewer.client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"}
        ).status_code
        == 200
    )


def test_revoked_and_expired_tokens_are_refused(api_as):
    viewer = api_as("viewer")
    created = viewer.post("/api/v1/tokens", json={"name": "short-lived"}).get_json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert viewer.client.get("/api/v1/me", headers=headers).status_code == 200
    assert viewer.delete(f"/api/v1/tokens/{created['id']}").get_json()["revoked_at"]
    refused = viewer.client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json()["message"] == "The API token is invalid, expired or revoked."

    other = viewer.post("/api/v1/tokens", json={"name": "expiring"}).get_json()
    with db.engine.begin() as conn:
        conn.execute(
            update(ApiToken)
            .where(ApiToken.id == other["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (
        viewer.client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {other['token']}"}
        ).status_code
        == 401
    )


def test_malformed_authorization_header_is_401(client):
    response = client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["message"]


def test_users_cannot_revoke_each_others_tokens(api_as):
    first, second = api_as("viewer"), api_as("viewer")
    token = first.post("/api/v1/tokens", json={"name": "mine"}).get_json()
    assert second.delete(f"/api/v1/tokens/{token['id']}").status_code == 403
    assert api_as("admin").delete(f"/api/v1/tokens/{token['id']}").status_code == 200


def test_session_login_needs_csrf_for_changes(client, create_user):
    user = create_user("operator")
    page = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert page.status_code == 302
    assert client.get("/api/v1/me").get_json()["username"] == user.username
    refused = client.post("/api/v1/operations", json={"kind": "noop"})
    assert refused.status_code == 400
    assert "CSRF" in refused.get_json()["message"]
    token = _csrf_token(client)
    accepted = client.post(
        "/api/v1/operations", json={"kind": "noop"}, headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 202


def test_wrong_password_login_is_refused_and_audited(client, create_user):
    user = create_user("viewer")
    response = client.post("/login", data={"username": user.username, "password": "not it at all"})
    assert response.status_code == 401
    assert b"Wrong user name or password." in response.data
    event = db.session.scalar(select(AuditEvent).filter_by(action="session.login"))
    assert (event.target, event.outcome) == (f"user:{user.username}", "failed (wrong password)")


def test_password_change_ends_other_sessions(client, create_user):
    user = create_user("viewer")
    client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert client.get("/api/v1/me").status_code == 200
    service.update_user(db.session.get(User, user.id), password="a brand new password")
    assert client.get("/api/v1/me").status_code == 401


def test_every_mutating_call_is_audited_with_outcome(api_as):
    admin = api_as("admin")
    admin.post("/api/v1/operations", json={"kind": "noop"})
    admin.post("/api/v1/operations", json={"kind": "bogus"})
    events = admin.get("/api/v1/audit").get_json()
    actions = [(e["action"], e["outcome"]) for e in events]
    assert ("operation.create", "success") in actions
    assert ("POST operations.OperationCollection", "failed (422)") in actions
    assert all(
        e["actor"].startswith("admin-")
        for e in events
        if e["action"].startswith(("POST", "operation"))
    )
    filtered = admin.get("/api/v1/audit?action=operation.create").get_json()
    assert {e["action"] for e in filtered} == {"operation.create"}
    assert api_as("operator").get("/api/v1/audit").status_code == 403


def _csrf_token(client) -> str:
    html = client.get("/operations").get_data(as_text=True)
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
