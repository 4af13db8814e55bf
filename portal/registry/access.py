"""Give hosts access to Spectr's registry: its CA in Docker's certs.d and a stored login."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portal.automation import run_playbook
from portal.core.operations.kinds import OperationContext, PermanentError, TransientError
from portal.registry import service

ACCESS_PLAYBOOK = Path(__file__).parent / "playbooks" / "registry_access.yml"


def grant_registry_access(ctx: OperationContext) -> dict[str, Any]:
    """Run the access playbook on every host named; report which hosts can pull now."""
    settings = service.pull_settings()
    if settings is None:
        raise PermanentError("Spectr's registry is not deployed yet: deploy it first.")
    from portal.hosts import service as hosts

    targets = [
        hosts.inventory_host(hosts.get_host(int(host_id))) for host_id in ctx.params["host_ids"]
    ]
    ctx.progress(0.1, f"configuring {len(targets)} host(s)")
    result = run_playbook(
        str(ACCESS_PLAYBOOK),
        hosts=targets,
        extravars={
            "spectr_registry_address": settings["address"],
            "spectr_registry_ca": settings["ca_pem"] or "",
            "spectr_registry_username": settings["username"] or "",
            "spectr_registry_password": settings["password"] or "",
        },
        log=ctx.log,
        cancel_event=ctx.cancel_event,
    )
    outcomes = {name: result.hosts.get(name) for name in (t.name for t in targets)}
    unreachable = [name for name, o in outcomes.items() if o and o.unreachable]
    failed = {name: o.failure_message for name, o in outcomes.items() if o and o.failed}
    if unreachable and not failed:
        raise TransientError(f"Unreachable: {', '.join(unreachable)}.")
    if failed or not result.succeeded:
        details = "; ".join(f"{name}: {message}" for name, message in failed.items())
        raise PermanentError(f"Registry access failed: {details or result.status}")
    return {"registry": settings["address"], "hosts": sorted(outcomes)}
