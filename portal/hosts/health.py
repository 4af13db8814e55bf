"""Health checks: ask every bootstrapped host's agent how it is, and record what changed.

A sweep probes all agents concurrently (a bounded thread pool, per-request timeouts, no
retries: the next sweep is the retry), then writes the results in one transaction: status
transitions with their reasons, last-seen times, and the container states of each host.
A host becomes `unreachable` after 2 missed sweeps in a row and `ready` again by itself.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from portal.core.pki import ca_certificate_path
from portal.core.ticker import periodic_job
from portal.core.timeutil import utcnow
from portal.engines import AgentEngine, ContainerInfo, EngineError, RetryPolicy
from portal.engines.resilience import CircuitBreaker
from portal.extensions import db
from portal.hosts.models import BOOTSTRAPPING, DEGRADED, READY, UNREACHABLE, Host, HostContainer
from portal.hosts.service import set_status
from portal.settings.service import get_setting

MISSED_CHECKS_FOR_UNREACHABLE = 2
MAX_PARALLEL_PROBES = 64
_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")


@dataclass(frozen=True)
class ProbeTarget:
    host_id: int
    agent_url: str
    token: str


@dataclass
class Probe:
    host_id: int
    answered: bool
    engine_ok: bool = False
    agent_version: str | None = None
    error: str | None = None
    containers: list[ContainerInfo] = field(default_factory=list)


@dataclass
class SweepReport:
    hosts: int
    answered: int
    probe_seconds: float
    write_seconds: float
    transitions: int


class AgentPool:
    """One AgentEngine per host, kept between sweeps so connections and TLS sessions stay open."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._engines: dict[int, tuple[ProbeTarget, AgentEngine]] = {}
        self._lock = threading.Lock()

    def engine(self, target: ProbeTarget, ca_path: str) -> AgentEngine:
        with self._lock:
            known = self._engines.get(target.host_id)
            if known is not None and known[0] == target:
                return known[1]
            if known is not None:
                known[1].close()
            engine = AgentEngine(
                target.agent_url,
                target.token,
                ca_path,
                timeout_s=self.timeout_s,
                connect_timeout_s=min(3.0, self.timeout_s),
                retry=RetryPolicy(attempts=1),
                breaker=CircuitBreaker(failure_threshold=10**9),  # the sweep is its own breaker
            )
            self._engines[target.host_id] = (target, engine)
            return engine

    def forget_except(self, host_ids: set[int]) -> None:
        with self._lock:
            for host_id in set(self._engines) - host_ids:
                self._engines.pop(host_id)[1].close()


_pool = AgentPool(timeout_s=5.0)


def probe_targets() -> list[ProbeTarget]:
    """Every host with an installed agent that is not being bootstrapped right now."""
    rows = db.session.execute(
        select(Host.id, Host.agent_url, Host.agent_token).where(
            Host.is_local.is_(False),
            Host.bootstrapped_at.is_not(None),
            Host.agent_url.is_not(None),
            Host.status != BOOTSTRAPPING,
        )
    ).all()
    return [ProbeTarget(row[0], row[1], row[2]) for row in rows if row[2]]


def probe(target: ProbeTarget, ca_path: str, pool: AgentPool = _pool) -> Probe:
    """Ask one agent for its health and containers; never raises."""
    engine = pool.engine(target, ca_path)
    health = engine.health()
    if health.agent_version is None:
        return Probe(target.host_id, answered=False, error=health.error or "no answer")
    result = Probe(target.host_id, True, health.reachable, health.agent_version, health.error)
    if health.reachable:
        try:
            result.containers = engine.list_containers(include_stopped=True)
        except EngineError as exc:
            result.engine_ok, result.error = False, f"listing containers failed: {exc}"
    return result


def check_all_hosts(timeout_s: float | None = None) -> SweepReport:
    """Probe every agent concurrently and record the results; return timings and counts."""
    if timeout_s is not None:
        _pool.timeout_s = timeout_s
    targets = probe_targets()
    db.session.rollback()  # no transaction stays open while the probes run
    _pool.forget_except({target.host_id for target in targets})
    started = time.perf_counter()
    probes: list[Probe] = []
    if targets:
        ca_path = str(ca_certificate_path())
        with ThreadPoolExecutor(min(MAX_PARALLEL_PROBES, len(targets))) as executor:
            probes = list(executor.map(lambda target: probe(target, ca_path), targets))
    probed = time.perf_counter()
    transitions = record_probes(probes)
    written = time.perf_counter()
    answered = sum(1 for p in probes if p.answered)
    return SweepReport(len(targets), answered, probed - started, written - probed, transitions)


def record_probes(probes: list[Probe]) -> int:
    """Write one sweep's results in one transaction; return how many statuses changed."""
    if not probes:
        return 0
    by_id = {p.host_id: p for p in probes}
    hosts = db.session.scalars(select(Host).where(Host.id.in_(by_id))).all()
    containers = _containers_by_host([p.host_id for p in probes if p.answered and p.engine_ok])
    transitions = 0
    now = utcnow()
    for host in hosts:
        if host.status == BOOTSTRAPPING:  # a bootstrap started meanwhile owns the status
            continue
        result = by_id[host.id]
        transitions += _apply_probe(host, result, now)
        if result.answered and result.engine_ok:
            _sync_containers(host.id, result.containers, containers.get(host.id, {}))
    db.session.commit()
    return transitions


def _apply_probe(host: Host, result: Probe, now: Any) -> int:
    if not result.answered:
        host.missed_checks = (host.missed_checks or 0) + 1
        if host.missed_checks >= MISSED_CHECKS_FOR_UNREACHABLE:
            reason = f"Agent did not answer {host.missed_checks} checks in a row: {result.error}"
            return int(set_status(host, UNREACHABLE, reason))
        return 0
    host.missed_checks, host.last_seen_at = 0, now
    if host.agent_version != result.agent_version:
        host.agent_version = result.agent_version
    problem = _problem(result)
    if problem:
        return int(set_status(host, DEGRADED, problem))
    return int(set_status(host, READY, "Agent and Docker engine answer."))


def _problem(result: Probe) -> str | None:
    if not result.engine_ok:
        return f"Agent answers but the Docker engine does not: {result.error}"
    sick = [
        c.name for c in result.containers if _health(c) == "unhealthy" or c.state == "restarting"
    ]
    if sick:
        return f"Unhealthy container(s): {', '.join(sorted(sick)[:10])}"
    return None


def _containers_by_host(host_ids: list[int]) -> dict[int, dict[str, HostContainer]]:
    grouped: dict[int, dict[str, HostContainer]] = {}
    if not host_ids:
        return grouped
    for row in db.session.scalars(select(HostContainer).where(HostContainer.host_id.in_(host_ids))):
        grouped.setdefault(row.host_id, {})[row.container_id] = row
    return grouped


def _sync_containers(
    host_id: int, seen: list[ContainerInfo], known: dict[str, HostContainer]
) -> None:
    """Insert new containers, update changed ones, delete the ones that are gone."""
    for info in seen:
        values = {
            "name": info.name,
            "image": info.image or "",
            "state": info.state or "unknown",
            "health": _health(info),
            "exit_code": info.exit_code if info.exit_code is not None else _exit_code(info),
            "restart_count": info.restart_count,
            "labels": info.labels,
        }
        row = known.pop(info.id, None)
        if row is None:
            db.session.add(HostContainer(host_id=host_id, container_id=info.id, **values))
            continue
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
    for gone in known.values():
        db.session.delete(gone)


def _health(info: ContainerInfo) -> str | None:
    if info.health:
        return info.health
    match = _HEALTH_IN_STATUS.search(info.status or "")
    return match.group(1).replace("health: ", "") if match else None


def _exit_code(info: ContainerInfo) -> int | None:
    match = _EXIT_CODE.match(info.status or "")
    return int(match.group(1)) if match else None


def _interval(app: Any) -> float:
    return float(get_setting("health_check_interval_seconds"))


@periodic_job("host_health_checks", _interval)
def run_health_checks() -> None:
    """Periodic job: one sweep over every host's agent."""
    interval = _interval(None)
    check_all_hosts(timeout_s=max(1.0, min(5.0, interval / 2)))
