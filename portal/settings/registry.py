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


# Sign-in: directory (LDAP / Active Directory) and OpenID Connect. Edited on the Sign-in page
# (a CA certificate is several lines), read by portal.admin.directory and portal.admin.oidc.
# A role's groups (or claim values) are separated by ";": DNs themselves hold commas.
def _sign_in(name: str, field: ma.fields.Field, default: Any, text: str, **kw: Any) -> None:
    group = "sso" if name == "sso_required" else name.split("_", 1)[0]
    define_setting(name, field, default, text, group=group, **kw)


_PEM = ma.validate.Regexp(r"^$|-----BEGIN CERTIFICATE-----", error="Paste a PEM certificate.")
_LIST = ma.fields.String(validate=ma.validate.Length(max=4000))


def _project_mapping(value: str) -> None:
    """PROJECT:ROLE=GROUP entries (imported late: the projects package needs the models)."""
    from portal.projects.identity import validate_mapping

    validate_mapping(value)


_sign_in(
    "sso_required",
    ma.fields.Boolean(),
    False,
    "Only admins may sign in with a local password (break-glass); everyone else uses the "
    "directory or the OpenID provider.",
)
_sign_in("ldap_enabled", ma.fields.Boolean(), False, "Sign in with the LDAP / AD directory.")
_sign_in(
    "ldap_url",
    ma.fields.String(
        validate=ma.validate.Regexp(r"^$|^ldaps?://[^/\s]+/?$", error="ldap://host[:port]")
    ),
    "",
    "ldap://host:389 (with StartTLS) or ldaps://host:636.",
)
_sign_in("ldap_start_tls", ma.fields.Boolean(), True, "Upgrade ldap:// with StartTLS.")
_sign_in(
    "ldap_ca_certificate",
    ma.fields.String(validate=[ma.validate.Length(max=20000), _PEM]),
    "",
    "PEM of the CA that signed the directory's certificate (empty: the system's CAs).",
)
_sign_in("ldap_bind_dn", _LIST, "", "Service account that searches for users.")
_sign_in(
    "ldap_bind_password",
    ma.fields.String(validate=ma.validate.Length(max=512)),
    None,
    "Service account's password (stored encrypted, never shown).",
    secret=True,
)
_sign_in("ldap_user_base", _LIST, "", "Where users are searched, e.g. ou=people,dc=example,dc=org.")
_sign_in(
    "ldap_user_filter",
    _LIST,
    "(objectClass=person)",
    "Users allowed to sign in; an entry outside it is disabled, e.g. for AD "
    "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))).",
)
_sign_in("ldap_login_attribute", _LIST, "uid", "Attribute typed as user name (AD: sAMAccountName).")
_sign_in(
    "ldap_group_mode",
    ma.fields.String(validate=ma.validate.OneOf(["memberof", "member", "ad_nested"])),
    "member",
    "memberof: the user's memberOf; member: groups naming the user, nested ones followed; "
    "ad_nested: Active Directory's LDAP_MATCHING_RULE_IN_CHAIN.",
)
_sign_in("ldap_group_base", _LIST, "", "Where groups are searched (member and ad_nested modes).")
for _role in ("admin", "operator", "viewer"):
    _sign_in(f"ldap_{_role}_groups", _LIST, "", f"Group DNs whose members are {_role}s.")
_sign_in(
    "ldap_project_groups",
    ma.fields.String(validate=[ma.validate.Length(max=4000), _project_mapping]),
    "",
    "Project memberships from groups: PROJECT:ROLE=GROUP DN entries separated by ';'. The "
    "projects named follow the groups at every sign-in.",
)
_sign_in("oidc_enabled", ma.fields.Boolean(), False, "Sign in with an OpenID Connect provider.")
_sign_in(
    "oidc_issuer",
    ma.fields.String(validate=ma.validate.Regexp(r"^$|^https?://\S+$", error="an http(s) URL")),
    "",
    "Issuer URL; its /.well-known/openid-configuration is read.",
)
_sign_in("oidc_client_id", _LIST, "", "Client id registered at the provider.")
_sign_in(
    "oidc_client_secret",
    ma.fields.String(validate=ma.validate.Length(max=512)),
    None,
    "Client secret (stored encrypted, never shown).",
    secret=True,
)
_sign_in("oidc_scopes", _LIST, "openid profile email", "Scopes asked for.")
_sign_in("oidc_username_claim", _LIST, "preferred_username", "Claim that names the user.")
_sign_in("oidc_roles_claim", _LIST, "groups", "Claim holding groups or roles.")
for _role in ("admin", "operator", "viewer"):
    _sign_in(f"oidc_{_role}_values", _LIST, "", f"Claim values that make a user {_role}.")
_sign_in(
    "oidc_project_values",
    ma.fields.String(validate=[ma.validate.Length(max=4000), _project_mapping]),
    "",
    "Project memberships from claim values: PROJECT:ROLE=VALUE entries separated by ';'. The "
    "projects named follow the claim at every sign-in.",
)
_sign_in(
    "oidc_ca_certificate",
    ma.fields.String(validate=[ma.validate.Length(max=20000), _PEM]),
    "",
    "PEM of the CA of an internal provider (empty: the system's CAs).",
)
_sign_in("oidc_button_label", _LIST, "Sign in with SSO", "Text of the login page's button.")
