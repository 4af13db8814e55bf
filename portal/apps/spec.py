"""An application's desired state: schemas of a container spec, and the role's variables.

The stored spec never holds secret env values: they live encrypted beside it in the revision
and are merged in only when the playbook runs.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import marshmallow as ma
from marshmallow import validate

from portal.apps.models import APP_KINDS, COMPOSE
from portal.core.converters import MAX_DATABASE_ID
from portal.projects.schemas import PROJECT_NAME

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="not a valid variable name")
DURATION = validate.Regexp(r"^\d+(ms|s|m|h)$", error="a duration like 10s, 500ms or 1m")
PULL_POLICIES = ("missing", "never", "always")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")


def _ip_address(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ma.ValidationError("not an IP address") from None


class PortSchema(ma.Schema):
    container_port = ma.fields.Integer(required=True, validate=validate.Range(1, 65535))
    host_port = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 65535)
    )
    host_ip = ma.fields.String(load_default="127.0.0.1", validate=_ip_address)
    protocol = ma.fields.String(load_default="tcp", validate=validate.OneOf(("tcp", "udp")))


class HealthcheckSchema(ma.Schema):
    test = ma.fields.List(ma.fields.String(), required=True, validate=validate.Length(min=1))
    interval = ma.fields.String(load_default="10s", validate=DURATION)
    timeout = ma.fields.String(load_default="5s", validate=DURATION)
    retries = ma.fields.Integer(load_default=3, validate=validate.Range(1, 100))
    start_period = ma.fields.String(load_default="5s", validate=DURATION)


class ContainerSpecSchema(ma.Schema):
    image = ma.fields.String(required=True)
    command = ma.fields.List(ma.fields.String(), load_default=list)
    env = ma.fields.Dict(
        keys=ma.fields.String(validate=ENV_NAME), values=ma.fields.String(), load_default=dict
    )
    ports = ma.fields.List(ma.fields.Nested(PortSchema), load_default=list)
    volumes = ma.fields.List(
        ma.fields.String(
            validate=validate.Regexp(r"^[^:\s]+:/[^:\s]*(:(ro|rw))?$", error="source:/target[:ro]")
        ),
        load_default=list,
    )
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)
    restart_policy = ma.fields.String(
        load_default="unless-stopped", validate=validate.OneOf(RESTART_POLICIES)
    )
    cpus = ma.fields.Float(load_default=None, allow_none=True, validate=validate.Range(0.01, 1024))
    memory = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\d+[bkmg]?$", error="like 512m or 16g"),
    )
    gpus = ma.fields.List(ma.fields.Integer(validate=validate.Range(0, 63)), load_default=list)
    healthcheck = ma.fields.Nested(HealthcheckSchema, load_default=None, allow_none=True)
    pull = ma.fields.String(load_default="missing", validate=validate.OneOf(PULL_POLICIES))


class AppInputSchema(ma.Schema):
    """A new application, or a new revision of one (name, host and kind are then ignored)."""

    name = ma.fields.String(
        validate=validate.Regexp(NAME_PATTERN, error="lowercase letters, digits, '-' and '_'")
    )
    host_id = ma.fields.Integer(validate=validate.Range(1, MAX_DATABASE_ID))
    project = ma.fields.String(
        load_default=None,
        validate=PROJECT_NAME,
        metadata={"description": "Project the new application belongs to (its host's own or "
                  "one the host is shared with); default: the first where you are an operator"},
    )  # fmt: skip
    kind = ma.fields.String(
        load_default=None,
        validate=validate.OneOf(APP_KINDS),
        metadata={"description": "container (default) or compose; a revision keeps the app's kind"},
    )
    container = ma.fields.Nested(ContainerSpecSchema, load_default=None, allow_none=True)
    compose = ma.fields.Raw(
        load_default=None, allow_none=True, metadata={"description": "YAML text or a mapping"}
    )
    secret_env = ma.fields.Dict(
        keys=ma.fields.String(validate=ENV_NAME), values=ma.fields.String(), load_default=dict
    )
    remove_secrets = ma.fields.List(ma.fields.String(), load_default=list)
    note = ma.fields.String(load_default="", validate=validate.Length(max=255))
    deploy = ma.fields.Boolean(load_default=True)

    @ma.validates_schema
    def _kind_matches(self, data: dict, **_: Any) -> None:
        if data["kind"] is None:
            return  # a new revision: checked against the application's own kind
        if data["kind"] == COMPOSE and data.get("compose") is None:
            raise ma.ValidationError("a compose application needs 'compose'", "compose")
        if data["kind"] != COMPOSE and data.get("container") is None:
            raise ma.ValidationError("a container application needs 'container'", "container")


def port_argument(port: dict[str, Any]) -> str:
    """Docker's publish syntax for one port: ip:host:container[/udp]."""
    text = f"{port['host_ip']}:{port.get('host_port') or ''}:{port['container_port']}"
    return text + ("/udp" if port.get("protocol") == "udp" else "")


def role_variables(
    name: str, kind: str, revision: int, spec: dict[str, Any], secrets: dict[str, str]
) -> dict[str, Any]:
    """The spectr.core.app role's variables for one revision."""
    variables: dict[str, Any] = {"app_name": name, "app_revision": str(revision), "app_kind": kind}
    if kind == COMPOSE:
        return {
            **variables,
            "app_compose": spec["compose"],
            "app_pull": spec.get("pull", "missing"),
        }
    healthcheck = spec.get("healthcheck") or {}
    return {
        **variables,
        "app_image": spec["image"],
        "app_pull": spec.get("pull", "missing"),
        "app_command": spec.get("command") or [],
        "app_env": {**spec.get("env", {}), **secrets},
        "app_ports": [port_argument(port) for port in spec.get("ports", [])],
        "app_volumes": spec.get("volumes") or [],
        "app_labels": spec.get("labels") or {},
        "app_gpus": [str(index) for index in spec.get("gpus") or []] or "",
        "app_cpus": spec.get("cpus") or 0,
        "app_memory": spec.get("memory") or "",
        "app_healthcheck": healthcheck,
        "app_wait_healthy": bool(healthcheck),
        "app_restart_policy": spec.get("restart_policy", "unless-stopped"),
    }
