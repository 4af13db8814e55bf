"""Rotate agents' credentials: a new server certificate and token per host, without downtime.

Each step runs for every host of the operation at once (one Ansible run, forks in parallel):

1. install - the agent role writes the new certificate, key and token hash and keeps the
   current token accepted (`agent_previous_token`); the agent reloads on SIGHUP, so open
   connections, health checks and other operations carry on.
2. verify - over mutual TLS the agent must serve the new certificate and accept the new token.
3. switch - the host row takes the new token and certificate (encrypted at rest).
4. retire - once the health checks that read the old token have had time to finish, the role
   runs again without `agent_previous_token`, and the old token must be refused.

Until step 3 the stored credentials stay valid at every moment, so a host that fails step 1 or
2 (unreachable, agent down) keeps them and is reported failed. A host that fails step 4 uses
its new credentials but still accepts the old token until the next rotation; the result says
so. The new credentials live only in this worker's memory until the switch: a retried
operation makes fresh ones, and the host still accepts whatever the row holds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import select

from portal.automation import InventoryHost, run_playbook
from portal.core.audit import record_audit
from portal.core.errors import Conflict
from portal.core.operations.kinds import (
    OperationCancelled,
    OperationContext,
    PermanentError,
)
from portal.core.pki import (
    agent_client_context,
    certificate_summary,
    issue_server_certificate,
    rotate_portal_client_certificate,
)
from portal.extensions import db
from portal.hosts.agent_artifact import agent_artifact_path
from portal.hosts.agent_checks import check_new_credentials, check_old_token_refused
from portal.hosts.bootstrap import agent_role_vars
from portal.hosts.failures import HostFailure, classify_outcome
from portal.hosts.health import longest_sweep_s
from portal.hosts.models import Host
from portal.hosts.service import get_host, inventory_host, require_idle

PLAYBOOK = "spectr.core.agent"


@dataclass
class Rotation:
    """One host's rotation: its new credentials, held in memory until the switch."""

    host_id: int
    name: str
    agent_url: str
    old_token: str
    token: str
    certificate: str
    private_key: str
    install: InventoryHost
    retire: InventoryHost


def plan_rotation(host_ids: list[int] | None, portal_certificate: bool) -> list[int]:
    """Check the hosts a rotation asked for and audit it; return their ids (all when None)."""
    if host_ids is not None:
        for host_id in host_ids:
            host = get_host(host_id)
            if host.is_local or not host.bootstrapped_at or not host.agent_token:
                raise Conflict(f"Host '{host.name}' has no agent to rotate; bootstrap it first.")
    hosts = rotation_targets(host_ids)
    for host in hosts:
        require_idle(host)
    if not hosts and not portal_certificate:
        raise Conflict("No bootstrapped host to rotate.")
    names = [host.name for host in hosts]
    record_audit(
        "host.rotate_credentials",
        f"host:{hosts[0].id}" if host_ids is not None and len(hosts) == 1 else "hosts",
        details={
            "hosts": names[:50],
            "count": len(names),
            "portal_certificate": portal_certificate,
        },
    )
    return [host.id for host in hosts]


def rotation_targets(host_ids: list[int] | None) -> list[Host]:
    """Hosts whose agents a rotation replaces: those given, or every bootstrapped remote host."""
    query = select(Host).where(Host.is_local.is_(False), Host.bootstrapped_at.is_not(None))
    query = query.where(Host.agent_token.is_not(None), Host.agent_url.is_not(None))
    if host_ids is not None:
        query = query.where(Host.id.in_(host_ids))
    return list(db.session.scalars(query.order_by(Host.name)))


def rotate_agent_credentials(ctx: OperationContext) -> dict[str, Any]:
    """The `rotate_agent_credentials` operation: new certificates and tokens for its hosts."""
    started = time.monotonic()
    portal = _rotate_portal_certificate(ctx) if ctx.params.get("portal_certificate") else None
    rotations, failed = _prepare(ctx)
    steps: dict[str, float] = {}
    live = _timed(steps, "install", lambda: _install(rotations, failed, ctx))
    live = _timed(steps, "verify", lambda: _verify(live, failed, ctx))
    if live:
        _switch(live, ctx)
        ctx.progress(0.6, f"{len(live)} host(s) switched; retiring the old tokens")
        ctx.wait(longest_sweep_s(len(rotations)))  # sweeps that read an old token finish first
        _timed(steps, "retire", lambda: _retire(live, failed, ctx))
    result = {
        "rotated": [r.name for r in live],
        "failed": failed,
        "certificates": {r.name: certificate_summary(_load(r.certificate)) for r in live},
        "portal_certificate": portal,
        "steps_seconds": steps,
        "seconds": round(time.monotonic() - started, 2),
    }
    _conclude(result, rotations, ctx)
    return result


def _rotate_portal_certificate(ctx: OperationContext) -> dict[str, str]:
    summary = certificate_summary(rotate_portal_client_certificate())
    ctx.log(
        f"Portal client certificate replaced: serial {summary['serial']}, expires "
        f"{summary['expires']}; agents accept it since it chains to the same CA."
    )
    return summary


def _prepare(ctx: OperationContext) -> tuple[list[Rotation], dict[str, dict[str, str]]]:
    """Issue a certificate and a token for every host; collect what Ansible needs from the rows."""
    hosts = rotation_targets([int(host_id) for host_id in ctx.params.get("host_ids") or []])
    failed: dict[str, dict[str, str]] = {}
    missing = set(map(int, ctx.params.get("host_ids") or [])) - {host.id for host in hosts}
    for host_id in sorted(missing):
        failed[f"host:{host_id}"] = _failure("select", "gone", "No bootstrapped host with this id.")
    rotations = []
    for host in hosts:
        host.last_operation_id = ctx.operation_id
        rotations.append(_rotation_for(host))
    db.session.commit()  # nothing may hold SQLite's lock while Ansible runs
    ctx.log(f"Issued a new certificate and token for {len(rotations)} host(s).")
    ctx.progress(0.05, f"installing credentials on {len(rotations)} host(s)")
    return rotations, failed


def _rotation_for(host: Host) -> Rotation:
    token = secrets.token_urlsafe(32)
    certificate, private_key = issue_server_certificate(host.name, [host.address])
    old_token = host.agent_token or ""
    return Rotation(
        host.id, host.name, host.agent_url or "", old_token, token, certificate, private_key,
        install=inventory_host(host, **agent_role_vars(certificate, private_key, token, old_token)),
        retire=inventory_host(host, **agent_role_vars(certificate, private_key, token)),
    )  # fmt: skip


def _install(
    rotations: list[Rotation], failed: dict[str, dict[str, str]], ctx: OperationContext
) -> list[Rotation]:
    """Step 1: put the new credentials in place next to the old token; return who has them."""
    done = _run_role([r.install for r in rotations], "install", failed, ctx)
    ctx.progress(0.4, f"{len(done)} of {len(rotations)} host(s) reloaded; verifying")
    return [r for r in rotations if r.name in done]


def _verify(
    rotations: list[Rotation], failed: dict[str, dict[str, str]], ctx: OperationContext
) -> list[Rotation]:
    """Step 2: each agent must serve the new certificate and accept the new token."""
    context = agent_client_context()
    outcomes = _each(
        rotations, lambda r: check_new_credentials(r.agent_url, r.certificate, r.token, context)
    )
    verified = []
    for rotation, problem in zip(rotations, outcomes, strict=True):
        if problem is None:
            verified.append(rotation)
            ctx.log(f"{rotation.name}: serves the new certificate and accepts the new token.")
        else:
            failed[rotation.name] = _failure("verify", "agent", problem)
            ctx.log(f"{rotation.name}: {problem}; it keeps its old credentials.", "error")
    return verified


def _switch(rotations: list[Rotation], ctx: OperationContext) -> None:
    """Step 3: the portal uses the new credentials from now on (one commit for all)."""
    for rotation in rotations:
        host = db.session.get(Host, rotation.host_id)
        if host is None:  # deleted meanwhile: nothing to switch
            continue
        host.agent_token = rotation.token
        host.agent_certificate, host.agent_private_key = rotation.certificate, rotation.private_key
    db.session.commit()
    for rotation in rotations:
        ctx.log(f"{rotation.name}: the portal now uses the new token and certificate.")


def _retire(
    rotations: list[Rotation], failed: dict[str, dict[str, str]], ctx: OperationContext
) -> None:
    """Step 4: the agents drop the old token; each must refuse it afterwards."""
    done = _run_role([r.retire for r in rotations], "retire", failed, ctx)
    context = agent_client_context()
    retired = [r for r in rotations if r.name in done]
    outcomes = _each(
        retired, lambda r: check_old_token_refused(r.agent_url, r.token, r.old_token, context)
    )
    for rotation, problem in zip(retired, outcomes, strict=True):
        if problem is None:
            ctx.log(f"{rotation.name}: the old token is refused; rotation complete.")
        else:
            failed[rotation.name] = _failure("retire", "agent", problem)
    for rotation in rotations:
        if rotation.name in failed:
            ctx.log(f"{rotation.name}: uses its new credentials but may still accept the old "
                    f"token: {failed[rotation.name]['reason']}", "warning")  # fmt: skip


def _run_role(
    hosts: list[InventoryHost], step: str, failed: dict[str, dict[str, str]],
    ctx: OperationContext,
) -> set[str]:  # fmt: skip
    """Run the agent role on `hosts`; record failures; return the names it succeeded on."""
    if not hosts:
        return set()
    forks = max(1, min(int(ctx.params.get("forks") or 10), len(hosts), 50))
    result = run_playbook(
        PLAYBOOK,
        hosts=hosts,
        extravars={"agent_artifact": str(agent_artifact_path())},
        log=ctx.log,
        cancel_event=ctx.cancel_event,
        forks=forks,
    )
    if result.status == "canceled":
        raise OperationCancelled()
    done = set()
    for host in hosts:
        outcome = result.hosts.get(host.name)
        problem = classify_outcome(outcome) if outcome is not None else None
        if outcome is None:
            problem = HostFailure("task", f"The playbook ended {result.status} before the host.")
        if problem is None:
            done.add(host.name)
        else:
            failed[host.name] = _failure(step, problem.kind, problem.message)
    return done


def _conclude(result: dict[str, Any], rotations: list[Rotation], ctx: OperationContext) -> None:
    """Log the outcome; fail the operation only when no host got its new credentials."""
    rotated, failed = result["rotated"], result["failed"]
    summary = f"Rotated {len(rotated)} of {len(rotations)} host(s) in {result['seconds']} s"
    if failed:
        listed = "; ".join(f"{name}: {f['reason']}" for name, f in sorted(failed.items()))
        summary += f". Failed: {listed}"
    ctx.log(summary, "warning" if failed else "info")
    if failed and not rotated and not any(f["step"] == "retire" for f in failed.values()):
        raise PermanentError(summary)
    ctx.progress(1.0, f"rotated {len(rotated)} of {len(rotations)} host(s)")


def _failure(step: str, kind: str, reason: str) -> dict[str, str]:
    """A failed host as the result shows it, saying which credentials the portal holds."""
    held = "new; the old token may still be accepted" if step == "retire" else "unchanged, valid"
    return {"step": step, "kind": kind, "reason": reason, "credentials": held}


def _each(rotations: list[Rotation], check: Callable[[Rotation], str | None]) -> list[str | None]:
    if not rotations:
        return []
    with ThreadPoolExecutor(min(32, len(rotations))) as executor:
        return list(executor.map(check, rotations))


def _timed(steps: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return step()
    finally:
        steps[name] = round(time.monotonic() - started, 2)


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())
