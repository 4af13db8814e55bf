"""Read and change settings; secrets are encrypted and never read back out."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from portal.core.audit import record_audit
from portal.core.errors import NotFound, ValidationFailed
from portal.extensions import db
from portal.settings.models import SettingValue
from portal.settings.registry import SETTINGS, SettingDefinition, settings_schema


def get_setting(name: str) -> Any:
    """Return a setting's current value (secrets decrypted, for services only)."""
    definition = _definition(name)
    stored = db.session.get(SettingValue, name)
    if stored is None:
        return definition.default
    return stored.secret_value if definition.secret else stored.value


def describe_settings() -> list[dict[str, Any]]:
    """Every setting with its value for display; a secret only says whether it is set."""
    stored = {row.name: row for row in db.session.query(SettingValue)}
    return [_describe(definition, stored.get(name)) for name, definition in SETTINGS.items()]


def _describe(definition: SettingDefinition, row: SettingValue | None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": definition.name,
        "group": definition.group,
        "type": definition.type_name,
        "description": definition.description,
        "secret": definition.secret,
        "default": None if definition.secret else definition.default,
        "updated_at": row.updated_at if row else None,
        "updated_by": row.updated_by if row else None,
    }
    if definition.secret:
        described["is_set"] = bool(row and row.secret_value)
    else:
        described["value"] = row.value if row else definition.default
    return described


def update_settings(changes: dict[str, Any], actor: str | None) -> list[dict[str, Any]]:
    """Validate and store changed settings; one bad field rejects the whole change."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ValidationFailed(
            f"Unknown setting(s): {', '.join(unknown)}.",
            {name: ["unknown setting"] for name in unknown},
        )
    try:
        values = settings_schema().load(changes)
    except ma.ValidationError as exc:
        fields = ", ".join(sorted(exc.messages))
        raise ValidationFailed(f"Invalid value for: {fields}.", exc.messages) from exc
    for name, value in values.items():
        _store(SETTINGS[name], value, actor)
    shown = {
        name: ("<secret>" if SETTINGS[name].secret else value) for name, value in values.items()
    }
    record_audit("settings.update", "settings", details=shown)
    db.session.commit()
    return describe_settings()


def _store(definition: SettingDefinition, value: Any, actor: str | None) -> None:
    row = db.session.get(SettingValue, definition.name) or SettingValue(name=definition.name)
    if definition.secret:
        row.secret_value = value
        row.value = None
    else:
        row.value = value
    row.updated_by = actor
    db.session.add(row)


def _definition(name: str) -> SettingDefinition:
    try:
        return SETTINGS[name]
    except KeyError:
        raise NotFound(f"No setting named '{name}'.") from None
