"""Definitions of every setting: name, type, default, bounds, whether it is a secret.

Contexts declare their settings here with `define_setting`, so the API, the page and
validation all come from one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma


@dataclass(frozen=True)
class SettingDefinition:
    name: str
    field: ma.fields.Field
    default: Any
    description: str
    group: str = "general"
    secret: bool = False
    type_name: str = field(default="string")


SETTINGS: dict[str, SettingDefinition] = {}


def define_setting(
    name: str,
    field: ma.fields.Field,
    default: Any,
    description: str,
    *,
    group: str = "general",
    secret: bool = False,
) -> SettingDefinition:
    type_name = {
        ma.fields.Integer: "integer",
        ma.fields.Float: "number",
        ma.fields.Boolean: "boolean",
        ma.fields.List: "list",
    }.get(type(field), "string")
    definition = SettingDefinition(name, field, default, description, group, secret, type_name)
    SETTINGS[name] = definition
    return definition


def settings_schema() -> ma.Schema:
    """A schema that validates a partial update of settings by name."""
    fields = {name: definition.field for name, definition in SETTINGS.items()}
    return ma.Schema.from_dict(fields, name="SettingsUpdate")(partial=True)


define_setting(
    "ssh_default_user",
    ma.fields.String(validate=ma.validate.Regexp(r"^[a-z_][a-z0-9_-]{0,31}$")),
    "root",
    "User Spectr logs in as when a host does not name one.",
    group="hosts",
)
define_setting(
    "ssh_default_port",
    ma.fields.Integer(validate=ma.validate.Range(1, 65535)),
    22,
    "SSH port used when a host does not name one.",
    group="hosts",
)
define_setting(
    "health_check_interval_seconds",
    ma.fields.Integer(validate=ma.validate.Range(5, 3600)),
    30,
    "How often every host's agent is checked; 2 missed checks make a host unreachable.",
    group="hosts",
)
define_setting(
    "registry_address",
    ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^$")),
    "",
    "host[:port] of Spectr's registry, which hosts pull from.",
    group="registry",
)
define_setting(
    "registry_password",
    ma.fields.String(validate=ma.validate.Length(max=512)),
    None,
    "Password Spectr uses for its registry (stored encrypted, never shown).",
    group="registry",
    secret=True,
)
define_setting(
    "proxy_public_address",
    ma.fields.Url(require_tld=False, schemes={"http", "https"}, allow_none=True),
    None,
    "Address where clients reach spectr_proxy and the LLM gateway.",
    group="proxy",
)
define_setting(
    "operation_log_retention_days",
    ma.fields.Integer(validate=ma.validate.Range(1, 3650)),
    30,
    "Days finished operations and their logs are kept.",
    group="operations",
)
