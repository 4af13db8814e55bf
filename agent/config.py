"""Agent configuration: a JSON file, then SPECTR_AGENT_* environment variables, then flags."""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, fields
from typing import Any

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(ValueError):
    """The configuration is missing a value or holds a bad one."""


@dataclass
class AgentConfig:
    """Settings the agent's Ansible role writes to /etc/spectr-agent/agent.json."""

    tls_cert: str = ""
    tls_key: str = ""
    token_sha256: str = ""
    # A second full-access token, set only while a credential rotation switches the portal from
    # this token to token_sha256; the rotation's last step removes it (and reloads).
    previous_token_sha256: str | None = None
    # Optional second token, valid only for GET /metrics: one scrape credential for the fleet.
    metrics_token_sha256: str | None = None
    client_ca: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 7443
    docker_socket: str = "/var/run/docker.sock"
    max_connections: int = 64
    # Connections from one address that have not yet sent a valid token (TLS handshake or first
    # request head): one address cannot take every slot.
    max_unauthenticated_per_client: int = 16
    tls_handshake_timeout_s: float = 10.0
    # From connection (after the handshake) to the end of the request head, not per line.
    request_head_timeout_s: float = 10.0
    log_level: str = "INFO"
    # The model cache (layout: agent/README.md); created at start when missing and possible.
    models_dir: str = "/var/lib/spectr/models"

    def validate(self) -> AgentConfig:
        """Raise ConfigError unless TLS files and a token hash are set and well formed."""
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if not path or not os.path.isfile(path):
                raise ConfigError(f"{name} must name a readable file (got {path!r})")
        if self.client_ca is not None and not os.path.isfile(self.client_ca):
            raise ConfigError(f"client_ca must name a readable file (got {self.client_ca!r})")
        self.token_sha256 = self.token_sha256.strip().lower()
        if not _HEX64.match(self.token_sha256):
            raise ConfigError("token_sha256 must be the hex SHA-256 of the bearer token")
        for name in ("previous_token_sha256", "metrics_token_sha256"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.strip().lower())
                if not _HEX64.match(getattr(self, name)):
                    raise ConfigError(f"{name} must be the hex SHA-256 of a bearer token")
        if not isinstance(self.models_dir, str) or not os.path.isabs(self.models_dir):
            raise ConfigError(f"models_dir must be an absolute path (got {self.models_dir!r})")
        if not 0 < int(self.listen_port) < 65536:
            raise ConfigError(f"listen_port out of range: {self.listen_port}")
        for name in _INTS + _SECONDS:
            if name != "listen_port" and getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive (got {getattr(self, name)})")
        return self


_INTS = ("listen_port", "max_connections", "max_unauthenticated_per_client")
# What SIGHUP applies to a running agent; any other change needs a restart.
RELOADABLE = (
    "tls_cert", "tls_key", "client_ca", "token_sha256", "previous_token_sha256",
    "metrics_token_sha256", "log_level",
)  # fmt: skip
_SECONDS = ("tls_handshake_timeout_s", "request_head_timeout_s")


def _coerce(name: str, value: Any) -> Any:
    if name in _INTS:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be an integer (got {value!r})") from exc
    if name in _SECONDS:
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a number of seconds (got {value!r})") from exc
    optional = ("client_ca", "metrics_token_sha256", "previous_token_sha256")
    return None if value in ("", None) and name in optional else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare --config and one override flag per setting."""
    parser.add_argument("--config", help="JSON config file (e.g. /etc/spectr-agent/agent.json)")
    for field in fields(AgentConfig):
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=None)


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> AgentConfig:
    """Merge file, environment and flags (later wins) and validate the result."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    config_path = args.config or environ.get("SPECTR_AGENT_CONFIG")
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config {config_path}: {exc}") from exc
        if not isinstance(document, dict):
            raise ConfigError(f"config {config_path} must hold a JSON object")
        known = {field.name for field in fields(AgentConfig)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        values.update(document)
    for field in fields(AgentConfig):
        env_value = environ.get("SPECTR_AGENT_" + field.name.upper())
        if env_value is not None:
            values[field.name] = env_value
        flag_value = getattr(args, field.name, None)
        if flag_value is not None:
            values[field.name] = flag_value
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    return AgentConfig(**coerced).validate()
