"""Deploy Spectr's registry with spectr.core.registry, and garbage-collect it.

TLS comes from the Spectr CA, auth is htpasswd with the `spectr` user whose password is the
`registry_password` setting (generated on first deploy). The registry row records where it
runs, so garbage collection reaches the same config later.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import current_app

from portal.automation import InventoryHost, PlaybookEvent, run_playbook
from portal.core.operations.kinds import OperationContext, PermanentError, TransientError
from portal.core.pki import ca_certificate_pem, issue_server_certificate
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.registry import service
from portal.registry.models import SPECTR, Registry
from portal.settings.service import get_setting, update_settings

REGISTRY_USER = "spectr"
GC_PLAYBOOK = Path(__file__).parent / "playbooks" / "garbage_collect.yml"
# The role's garbage-collect script ends with how long pushes were refused.
READ_ONLY_WINDOW = re.compile(r"read-only window: (\d+) ms")
DEFAULTS = {
    "port": 5000,
    "service_name": "spectr-registry",
    "config_dir": "/etc/spectr-registry",
    "storage_path": "/var/lib/spectr-registry",
    "service_manager": "auto",
}


def deploy_params(body: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults of a deploy request and work out the address hosts will use."""
    params = {**DEFAULTS, **{k: v for k, v in body.items() if v is not None}}
    host_address = _host_of(params["host_id"])[1]  # 404 for an unknown host, before accepting
    if not params.get("address"):
        params["address"] = f"{host_address}:{params['port']}"
    return params


def _host_of(host_id: int | None) -> tuple[InventoryHost, str]:
    """The inventory entry for the target host and the address it is known by."""
    from portal.hosts import service as hosts

    # A registry row without a host (recorded by hand, as tests do) runs on the Spectr node.
    host = hosts.ensure_local_host() if host_id is None else hosts.get_host(host_id)
    return hosts.inventory_host(host), host.address


def deploy_registry(ctx: OperationContext) -> dict[str, Any]:
    """Run the registry role on the target, record the registry, check it answers."""
    params = ctx.params
    target, _ = _host_of(params.get("host_id"))
    password = _registry_password()
    address = params["address"]
    names = [address.rsplit(":", 1)[0], "127.0.0.1", "localhost", *params.get("extra_names", [])]
    cert, key = issue_server_certificate("Spectr registry", names)
    ctx.progress(0.1, f"deploying the registry on {target.name}")
    result = run_playbook(
        "spectr.core.registry",
        hosts=[target],
        extravars=_role_vars(params, cert, key, password),
        log=ctx.log,
        cancel_event=ctx.cancel_event,
        forks=1,
    )
    if not result.succeeded:
        outcome = result.hosts.get(target.name)
        reason = outcome.failure_message or outcome.unreachable_message if outcome else None
        raise PermanentError(
            f"The registry role failed on {target.name}: {reason or result.status}"
        )
    registry = _record(params, password)
    ctx.progress(0.9, "checking the registry answers")
    _verify(registry, ctx)
    return {"registry_id": registry.id, "url": registry.url, "address": registry.address}


def _registry_password() -> str:
    password = get_setting("registry_password")
    if not password:
        password = secrets.token_urlsafe(24)
        update_settings({"registry_password": password}, actor="spectr")
    return password


def _role_vars(params: dict[str, Any], cert: str, key: str, password: str) -> dict[str, Any]:
    return {
        "registry_name": params["service_name"],
        "registry_port": params["port"],
        "registry_config_dir": params["config_dir"],
        "registry_storage_path": params["storage_path"],
        "registry_tls_cert": cert + ca_certificate_pem(),
        "registry_tls_key": key,
        "registry_users": [{"name": REGISTRY_USER, "password": password}],
        "registry_service_manager": params["service_manager"],
        "registry_gc_schedule": params.get("gc_schedule", "30 3 * * 0"),
        **storage_vars(current_app.config),
    }


def storage_vars(config: Mapping[str, Any]) -> dict[str, Any]:
    """The role's storage variables from configuration alone: SPECTR_REGISTRY_STORAGE
    (filesystem or s3) and, for s3, the SPECTR_REGISTRY_S3_* bucket settings. Images and model
    artifacts alike then live in that bucket; nothing else in Spectr changes."""
    driver = config.get("SPECTR_REGISTRY_STORAGE") or "filesystem"
    if driver == "filesystem":
        return {"registry_storage": "filesystem"}
    if driver != "s3":
        raise PermanentError(f"SPECTR_REGISTRY_STORAGE must be filesystem or s3, not '{driver}'.")
    s3 = {
        key: config.get(f"SPECTR_REGISTRY_S3_{key.upper()}")
        for key in ("bucket", "access_key", "secret_key", "endpoint", "region")
    }
    missing = [f"SPECTR_REGISTRY_S3_{k.upper()}" for k in ("bucket", "access_key", "secret_key")
               if not s3[k]]  # fmt: skip
    if missing:
        raise PermanentError(f"S3 storage for the registry needs {', '.join(missing)}.")
    s3["secure"] = not str(s3["endpoint"] or "https:").startswith("http:")
    return {
        "registry_storage": "s3",
        "registry_s3": {k: v for k, v in s3.items() if v not in (None, "")},
    }


def _record(params: dict[str, Any], password: str) -> Registry:
    registry = service.spectr_registry() or Registry(kind=SPECTR, name=params.get("name", "spectr"))
    registry.url = f"https://{params['address']}"
    registry.username, registry.password = REGISTRY_USER, password
    registry.ca_pem = ca_certificate_pem()
    registry.deployed_on_host_id = params.get("host_id")
    registry.service_name = params["service_name"]
    registry.config_dir, registry.storage_path = params["config_dir"], params["storage_path"]
    db.session.add(registry)
    update_settings({"registry_address": params["address"]}, actor="spectr")
    return registry


def _verify(registry: Registry, ctx: OperationContext) -> None:
    for _ in range(20):
        check = service.check_connection(registry)
        if check["ok"]:
            ctx.log(check["message"])
            return
        ctx.wait(0.5)
    # Retrying re-runs the (idempotent) role, which restarts a registry that died on start.
    raise TransientError(
        f"The registry was deployed but the portal cannot use it: {check['message']}"
    )


def garbage_collect(ctx: OperationContext) -> dict[str, Any]:
    """Run the registry's garbage collector where it is deployed, read-only meanwhile; log it."""
    registry = service.get_registry(int(ctx.params["registry_id"]))
    if registry.kind != SPECTR or not registry.config_dir:
        raise PermanentError("Only a registry Spectr deployed can be garbage-collected by Spectr.")
    target, _ = _host_of(registry.deployed_on_host_id)
    collected: dict[str, Any] = {"deleted_blobs": 0, "lines": 0, "read_only_ms": None}

    def on_event(event: PlaybookEvent) -> None:
        for line in event.result.get("stdout_lines") or []:
            collected["lines"] += 1
            collected["deleted_blobs"] += "blob eligible for deletion" in line
            window = READ_ONLY_WINDOW.search(line)
            if window:
                collected["read_only_ms"] = int(window.group(1))
            ctx.log(line)

    ctx.progress(0.1, f"garbage-collecting {registry.name}")
    result = run_playbook(
        str(GC_PLAYBOOK),
        hosts=[target],
        extravars={"registry_config_dir": registry.config_dir},
        log=ctx.log,
        on_event=on_event,
        cancel_event=ctx.cancel_event,
        forks=1,
    )
    if not result.succeeded:
        outcome = result.hosts.get(target.name)
        reason = outcome.failure_message if outcome else result.status
        raise PermanentError(f"Garbage collection failed on {target.name}: {reason}")
    ctx.log(
        f"Garbage collection done: {collected['deleted_blobs']} blob(s) deleted; pushes were "
        f"refused for {collected['read_only_ms']} ms, pulls served."
    )
    return {"registry_id": registry.id, "deleted_blobs": collected["deleted_blobs"],
            "read_only_ms": collected["read_only_ms"],
            "finished_at": utcnow().isoformat()}  # fmt: skip
