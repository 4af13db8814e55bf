"""Bootstrap hosts: check SSH host keys, run spectr.core.bootstrap, store facts, verify the agent.

One operation may bootstrap many hosts: they share one ansible-runner run (Ansible forks do
them in parallel), each host gets its own outcome and reason, and the operation retries (with
backoff) only when every host that failed merely did not answer.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from portal.automation import HostOutcome, InventoryHost, PlaybookEvent, run_playbook
from portal.core.operations.kinds import (
    OperationCancelled,
    OperationContext,
    PermanentError,
    TransientError,
)
from portal.core.pki import ca_certificate_pem, issue_server_certificate
from portal.core.timeutil import utcnow
from portal.engines import RetryPolicy
from portal.engines.resilience import CircuitBreaker
from portal.extensions import db
from portal.hosts import ssh_keys
from portal.hosts.agent_artifact import agent_artifact_path
from portal.hosts.facts import store_facts
from portal.hosts.failures import HostFailure, classify_outcome
from portal.hosts.models import BOOTSTRAPPING, DEGRADED, NEW, READY, UNREACHABLE, Host
from portal.hosts.service import agent_engine, agent_url_for, get_host, inventory_host, set_status

PLAYBOOK = "spectr.core.bootstrap"
AGENT_WAIT_S = 20.0
EXPECTED_TASKS_PER_HOST = 45  # for the progress bar only


@dataclass
class BootstrapRun:
    """What one attempt learned, host by host."""

    failures: dict[str, HostFailure] = field(default_factory=dict)
    ready: list[str] = field(default_factory=list)
    events: int = 0
    playbook_seconds: float = 0.0


def bootstrap_hosts(ctx: OperationContext) -> dict[str, Any]:
    """The `bootstrap_hosts` operation: bring every host in params['host_ids'] to ready."""
    try:
        hosts = _hosts_to_run(ctx)
        run = BootstrapRun()
        for host in hosts:
            _mark_bootstrapping(host, ctx.operation_id)
        contacted = [host for host in hosts if _first_contact(host, run, ctx)]
        if contacted:
            _run_playbook(contacted, run, ctx)
        return _conclude(hosts, run, ctx)
    except BaseException:
        db.session.rollback()  # release SQLite's write lock before the runner records the end
        raise


def _hosts_to_run(ctx: OperationContext) -> list[Host]:
    hosts = [get_host(int(host_id)) for host_id in ctx.params["host_ids"]]
    if ctx.attempt > 1:  # hosts this operation already made ready need no second run
        hosts = [
            h for h in hosts if not (h.last_operation_id == ctx.operation_id and h.status == READY)
        ]
    local = [host.name for host in hosts if host.is_local]
    if local:
        raise PermanentError(f"The Spectr node itself is not bootstrapped over SSH: {local[0]}.")
    return hosts


def _mark_bootstrapping(host: Host, operation_id: str) -> None:
    host.last_operation_id = operation_id
    set_status(host, BOOTSTRAPPING, f"Bootstrap operation {operation_id}")
    db.session.commit()


def _first_contact(host: Host, run: BootstrapRun, ctx: OperationContext) -> bool:
    """Record the host key at first contact, or check it against the recorded one."""
    try:
        scanned = ssh_keys.scan_host_keys(host.address, host.ssh_port)
        if host.host_key:
            ssh_keys.check_host_key(host.host_key, scanned, host.host_key_fingerprint)
        else:
            host.host_key, host.host_key_fingerprint = scanned.known_hosts, scanned.fingerprint
            db.session.commit()
            ctx.log(f"{host.name}: first contact, recorded SSH host key {scanned.fingerprint}")
        return True
    except ssh_keys.HostKeyChanged as exc:
        run.failures[host.name] = HostFailure("host_key_changed", str(exc))
    except TransientError as exc:
        run.failures[host.name] = HostFailure("unreachable", str(exc))
    ctx.log(f"{host.name}: {run.failures[host.name].message}", "error")
    return False


def _run_playbook(hosts: list[Host], run: BootstrapRun, ctx: OperationContext) -> None:
    inventory = [_inventory_host(host) for host in hosts]
    db.session.commit()
    artifact = agent_artifact_path()
    ctx.log(f"Running {PLAYBOOK} on {len(hosts)} host(s) with {_forks(ctx, hosts)} forks.")
    progress = _Progress(ctx, [host.name for host in hosts])
    started = time.monotonic()
    result = run_playbook(
        PLAYBOOK,
        hosts=inventory,
        extravars={"agent_artifact": str(artifact), **_registry_trust()},
        log=ctx.log,
        on_event=progress.on_event,
        cancel_event=ctx.cancel_event,
        forks=_forks(ctx, hosts),
    )
    run.events, run.playbook_seconds = result.events_count, round(time.monotonic() - started, 2)
    if result.status == "canceled":
        for host in hosts:
            _settle_failed(host, HostFailure("cancelled", "Bootstrap cancelled on request."))
        db.session.commit()
        raise OperationCancelled()
    for host in hosts:
        _after_run(host, result.hosts.get(host.name) or HostOutcome(), result.facts, run, ctx)


def _registry_trust() -> dict[str, object]:
    """Make the host's Docker trust Spectr's registry CA, when a registry is deployed."""
    from portal.registry.service import bootstrap_extravars

    return bootstrap_extravars()


def _forks(ctx: OperationContext, hosts: list[Host]) -> int:
    return max(1, min(int(ctx.params.get("forks") or 10), len(hosts), 50))


def _inventory_host(host: Host) -> InventoryHost:
    """Connection details plus this host's agent certificate and token (kept for re-runs)."""
    if not host.agent_token:
        host.agent_token = secrets.token_urlsafe(32)
    if not _certificate_covers(host.agent_certificate, host.address):
        host.agent_certificate, host.agent_private_key = issue_server_certificate(
            host.name, [host.address]
        )
    host.agent_url = agent_url_for(host)
    credentials = agent_role_vars(
        host.agent_certificate or "", host.agent_private_key or "", host.agent_token
    )
    return inventory_host(host, **credentials)


def agent_role_vars(
    certificate: str, private_key: str, token: str, previous_token: str | None = None
) -> dict[str, str]:
    """The agent role's credentials for one host; mutual TLS with Spectr's CA is always on."""
    variables = {
        "agent_tls_cert": certificate,
        "agent_tls_key": private_key,
        "agent_token": token,
        "agent_client_ca": ca_certificate_pem(),
    }
    if previous_token:
        variables["agent_previous_token"] = previous_token
    return variables


def _certificate_covers(certificate_pem: str | None, address: str) -> bool:
    if not certificate_pem:
        return False
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    shown = {str(value) for value in names.get_values_for_type(x509.IPAddress)}
    shown |= set(names.get_values_for_type(x509.DNSName))
    expires = certificate.not_valid_after_utc.replace(tzinfo=None)
    return address in shown and (expires - utcnow()).days > 30


def _after_run(
    host: Host,
    outcome: HostOutcome,
    facts: dict[str, dict[str, Any]],
    run: BootstrapRun,
    ctx: OperationContext,
) -> None:
    failure = classify_outcome(outcome)
    reported = (facts.get(host.name) or {}).get("spectr_host")
    if failure is None and reported:
        store_facts(host, reported)
        host.bootstrapped_at = utcnow()
        db.session.commit()  # SQLite: no write transaction may stay open while logging
        failure = _verify_agent(host, ctx)
    elif failure is None:
        failure = HostFailure("task", "The playbook ended without reporting host facts.")
    if failure is None:
        run.ready.append(host.name)
    else:
        run.failures[host.name] = failure
        _settle_failed(host, failure)
    db.session.commit()


def _verify_agent(host: Host, ctx: OperationContext) -> HostFailure | None:
    """Wait until the agent answers /v1/health over TLS with the portal's CA and token."""
    engine = agent_engine(
        agent_url_for(host),
        host.agent_token or "",
        timeout_s=5.0,
        retry=RetryPolicy(attempts=1),
        breaker=CircuitBreaker(failure_threshold=10**6),
    )
    deadline = time.monotonic() + AGENT_WAIT_S
    try:
        while True:
            health = engine.health()
            if health.contract_problem:
                return HostFailure("agent", health.contract_problem)
            if health.agent_version is not None:
                break
            if time.monotonic() > deadline:
                return HostFailure(
                    "agent",
                    f"Agent did not come up: the portal could not reach {host.agent_url} "
                    f"over TLS ({health.error}).",
                )
            ctx.wait(1.0)
    finally:
        engine.close()
    host.agent_version, host.last_seen_at, host.missed_checks = health.agent_version, utcnow(), 0
    if health.reachable:
        set_status(host, READY, f"Bootstrapped; agent {health.agent_version} answers over TLS.")
        db.session.commit()
        ctx.log(f"{host.name}: agent {health.agent_version} answers over TLS; host is ready.")
    else:
        set_status(host, DEGRADED, f"Agent answers but the Docker engine does not: {health.error}")
        db.session.commit()
        ctx.log(f"{host.name}: agent answers but Docker does not ({health.error}).", "warning")
    return None


def _settle_failed(host: Host, failure: HostFailure) -> None:
    if failure.kind == "unreachable":
        status = UNREACHABLE
    else:
        status = DEGRADED if host.bootstrapped_at else NEW
    set_status(host, status, failure.message)


def _conclude(hosts: list[Host], run: BootstrapRun, ctx: OperationContext) -> dict[str, Any]:
    for name, failure in run.failures.items():
        host = next(h for h in hosts if h.name == name)
        if host.status == BOOTSTRAPPING:
            _settle_failed(host, failure)
    db.session.commit()
    result = {
        "ready": run.ready,
        "failed": {name: {"kind": f.kind, "reason": f.message} for name, f in run.failures.items()},
        "ansible_events": run.events,
        "playbook_seconds": run.playbook_seconds,
    }
    if not run.failures:
        return result
    if len(hosts) == 1:
        summary = next(iter(run.failures.values())).message
    else:
        listed = "; ".join(f"{name}: {f.message}" for name, f in sorted(run.failures.items()))
        summary = f"{len(run.failures)} of {len(hosts)} hosts failed. {listed}"
    if all(failure.transient for failure in run.failures.values()):
        raise TransientError(summary)
    raise PermanentError(summary)


class _Progress:
    """Per-host progress from playbook events, written at most twice a second."""

    def __init__(self, ctx: OperationContext, names: list[str]) -> None:
        self._ctx = ctx
        self._done = dict.fromkeys(names, 0)
        self._last_report = 0.0

    def on_event(self, event: PlaybookEvent) -> None:
        if event.host in self._done and event.kind in ("ok", "changed", "skipped", "failed"):
            self._done[event.host] += 1
        now = time.monotonic()
        if now - self._last_report < 0.5 and event.kind != "recap":
            return
        self._last_report = now
        shares = [min(count / EXPECTED_TASKS_PER_HOST, 1.0) for count in self._done.values()]
        fraction = 0.95 * sum(shares) / max(len(shares), 1)
        busy = ", ".join(f"{name} {min(100, round(100 * share))}%" for name, share in
                         zip(self._done, shares, strict=True))  # fmt: skip
        self._ctx.progress(fraction, busy[:250])
