"""Change an application from its latest revision, and copy one to another name or host.

An edit is a new revision like any other (service.add_revision): the form starts from the
latest revision's spec, secret values are never sent back to the browser, and a secret the
person leaves empty is kept as it was. A duplicate is a new application whose first revision
copies the source's latest one, secrets included (they stay encrypted; only the service reads
them).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from portal.apps.form_fields import port_text
from portal.apps.models import COMPOSE, Application
from portal.apps.service import add_revision, get_revision
from portal.core.audit import record_audit
from portal.core.errors import ValidationFailed
from portal.hosts.service import get_host
from portal.projects.sharing import project_for_new_app

# Spec keys the edit form does not show; they are carried over unchanged into the new revision.
FORM_KEYS = ("image", "command", "env", "ports", "volumes", "gpus", "restart_policy", "labels")


def _lines(mapping: dict[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in mapping.items())


def compose_text(spec: dict[str, Any]) -> str:
    """The compose file as the person last wrote it (comments kept), or the stored mapping."""
    if spec.get("compose_source"):
        return str(spec["compose_source"])
    return yaml.safe_dump(spec.get("compose") or {}, sort_keys=False)


def form_values(app: Application) -> dict[str, Any]:
    """The edit form's fields, filled from the latest revision; secrets by name only."""
    revision = get_revision(app, app.latest_revision)
    spec = revision.spec
    values: dict[str, Any] = {
        "secret_keys": list(spec.get("secret_env_keys") or []),
        "note": "",
    }
    if app.kind == COMPOSE:
        return {**values, "compose": compose_text(spec)}
    return {
        **values,
        "image": spec.get("image", ""),
        "command": shlex.join(spec.get("command") or []),
        "env": _lines(spec.get("env") or {}),
        "ports": ", ".join(port_text(port) for port in spec.get("ports") or []),
        "volumes": "\n".join(spec.get("volumes") or []),
        "gpus": ",".join(str(index) for index in spec.get("gpus") or []),
        "restart_policy": spec.get("restart_policy", "unless-stopped"),
        "labels": _lines(spec.get("labels") or {}),
    }


def carried_over(app: Application) -> dict[str, Any]:
    """What the latest container revision holds beyond the form (healthcheck, limits, pull)."""
    spec = get_revision(app, app.latest_revision).spec
    return {k: v for k, v in spec.items() if k not in (*FORM_KEYS, "secret_env_keys")}


def duplicate_app(source: Application, name: str, host_id: int, deploy: bool) -> Application:
    """A new application `name` on `host_id` whose revision 1 is `source`'s latest revision."""
    if not name:
        raise ValidationFailed(
            "'name' is required.", {"name": ["Missing data for required field."]}
        )
    revision = get_revision(source, source.latest_revision)
    spec = {k: v for k, v in revision.spec.items() if k != "secret_env_keys"}
    body: dict[str, Any] = {
        "name": name,
        "kind": source.kind,
        "note": f"duplicate of {source.name} revision {revision.number}",
        "secret_env": json.loads(revision.secret_env) if revision.secret_env else {},
        "deploy": deploy,
    }
    if source.kind == COMPOSE:
        body["compose"] = spec["compose"]
        if spec.get("compose_source"):
            body["compose_source"] = spec["compose_source"]
    else:
        body["container"] = spec
    host = get_host(host_id)
    copy = Application(
        name=name,
        host_id=host.id,
        # The source's project where the host allows it (a shared host), else as a new one.
        project_id=project_for_new_app(host, prefer=source.project_id),
        kind=source.kind,
        status="pending",
        model_id=source.model_id,
        runtime_id=source.runtime_id,
    )
    record_audit(
        "app.duplicate",
        f"app:{name}",
        details={"source": source.name, "source_host_id": source.host_id, "host": host.name},
    )
    return add_revision(
        copy,
        body,
        is_new=True,
        gpu_indexes=list(revision.gpu_indexes or []),
        vram_reservation_mib=revision.vram_reservation_mib,
    )
