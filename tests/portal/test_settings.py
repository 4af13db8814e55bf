"""Typed settings: validation naming the field, secrets encrypted at rest and never shown."""

from __future__ import annotations

from sqlalchemy import text

from portal.settings import service


def _by_name(settings: list[dict]) -> dict[str, dict]:
    return {setting["name"]: setting for setting in settings}


def test_defaults_and_update(api_as):
    admin = api_as("admin")
    settings = _by_name(admin.get("/api/v1/settings").get_json())
    assert settings["health_check_interval_seconds"]["value"] == 30
    changed = admin.patch("/api/v1/settings", json={"health_check_interval_seconds": 10})
    assert changed.status_code == 200
    assert _by_name(changed.get_json())["health_check_interval_seconds"]["value"] == 10
    assert service.get_setting("health_check_interval_seconds") == 10


def test_invalid_values_are_422_naming_the_field(api_as):
    admin = api_as("admin")
    response = admin.patch(
        "/api/v1/settings", json={"ssh_default_port": 70000, "health_check_interval_seconds": 10}
    )
    assert response.status_code == 422
    body = response.get_json()
    assert list(body["details"]) == ["ssh_default_port"]
    assert "ssh_default_port" in body["message"]
    assert service.get_setting("health_check_interval_seconds") == 30  # nothing half-applied
    unknown = admin.patch("/api/v1/settings", json={"no_such_setting": 1})
    assert unknown.status_code == 422 and "no_such_setting" in unknown.get_json()["details"]


def test_secret_settings_are_encrypted_and_never_returned(any_db_app, api_as):
    admin = api_as("admin")
    response = admin.patch("/api/v1/settings", json={"registry_password": "hunter2-registry"})
    assert "hunter2-registry" not in response.get_data(as_text=True)
    shown = _by_name(response.get_json())["registry_password"]
    assert shown["is_set"] is True and "value" not in shown
    raw = (
        any_db_app.extensions["sqlalchemy"]
        .session.execute(text("SELECT secret_value FROM settings WHERE name = 'registry_password'"))
        .scalar_one()
    )
    assert "hunter2" not in raw
    assert service.get_setting("registry_password") == "hunter2-registry"
    audit = admin.get("/api/v1/audit?action=settings.update").get_json()
    assert audit[0]["details"] == {"registry_password": "<secret>"}


def test_only_admins_change_settings(api_as):
    assert api_as("viewer").get("/api/v1/settings").status_code == 200
    assert (
        api_as("operator").patch("/api/v1/settings", json={"ssh_default_port": 2222}).status_code
        == 403
    )
