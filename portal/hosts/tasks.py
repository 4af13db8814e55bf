"""Operation kinds of the hosts context: bootstrap, credential rotation, delete-with-cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portal.automation import run_playbook
from portal.core.operations.kinds import OperationContext, PermanentError, operation_kind
from portal.engines import EngineError
from portal.extensions import db
from portal.hosts import service
from portal.hosts.bootstrap import bootstrap_hosts
from portal.hosts.failures import classify_outcome
from portal.hosts.rotation import rotate_agent_credentials

REMOVE_AGENT_PLAYBOOK = Path(__file__).parent / "playbooks" / "remove_agent.yml"
MANAGED_LABEL = "spectr.managed-by"


@operation_kind("bootstrap_hosts")
def run_bootstrap(ctx: OperationContext) -> dict[str, Any]:
    """Bootstrap one or many hosts (see portal.hosts.bootstrap)."""
    return bootstrap_hosts(ctx)


@operation_kind("rotate_agent_credentials")
def run_rotation(ctx: OperationContext) -> dict[str, Any]:
    """Replace agents' certificates and tokens without downtime (see portal.hosts.rotation)."""
    return rotate_agent_credentials(ctx)


@operation_kind("delete_host")
def run_delete_host(ctx: OperationContext) -> dict[str, Any]:
    """Stop Spectr's containers on the host, remove its agent, then forget the host."""
    host = service.get_host(int(ctx.params["host_id"]))
    host.last_operation_id = ctx.operation_id
    db.session.commit()
    stopped = _stop_managed_containers(host, ctx)
    ctx.progress(0.3, "removing the agent")
    result = run_playbook(
        str(REMOVE_AGENT_PLAYBOOK),
        hosts=[service.inventory_host(host)],
        log=ctx.log,
        cancel_event=ctx.cancel_event,
        forks=1,
    )
    outcome = result.hosts.get(host.name)
    failure = classify_outcome(outcome) if outcome is not None else None
    if failure is not None or not result.succeeded:
        reason = failure.message if failure else f"playbook ended {result.status}"
        raise PermanentError(f"Could not remove the agent from {host.name}: {reason}")
    name = host.name
    service.delete_host(host)
    ctx.log(f"Host {name} deleted.")
    return {"host": name, "stopped_containers": stopped}


def _stop_managed_containers(host: Any, ctx: OperationContext) -> list[str]:
    if not host.agent_token or not host.bootstrapped_at:
        return []
    stopped = []
    try:
        with service.engine_for(host) as engine:
            for container in engine.list_containers({MANAGED_LABEL: None}, include_stopped=False):
                engine.stop_container(container.id)
                stopped.append(container.name)
                ctx.log(f"Stopped container {container.name}.")
    except EngineError as exc:
        ctx.log(f"Could not stop containers through the agent: {exc}", "warning")
    db.session.rollback()
    return stopped
