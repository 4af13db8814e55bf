"""Health checks: ask every bootstrapped host's agent how it is, and record what changed.

A sweep probes all agents concurrently (one event loop over kept TLS connections, per-request
timeouts, no retries: the next sweep is the retry), and beside them the Spectr node's own
engine (local_node.py) and the engines of the hosts that configuration puts on an engine other
than the agent (engine_probes.py, in threads), then writes the results in one transaction:
status transitions with their reasons, last-seen times, the containers of each host whose
listing changed, and the status of the applications on those hosts. A host becomes `unreachable` after 2 missed sweeps
in a row and `ready` again by itself.

Only Spectr's own applications make a host `degraded`: a crash-looping container that someone
started by hand, or that another tool manages, is recorded and shown on the host page, but it
says nothing about whether Spectr's work on that host is healthy.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, select, type_coerce, update

from portal.apps.lifecycle import applications_by_host, follow_host_containers
from portal.core.operations.runner import WORKER_ID
from portal.core.pki import agent_client_context, ca_certificate_path, portal_client_certificate
from portal.core.secrets_box import secret_box
from portal.core.ticker import periodic_job
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo
from portal.engines.contracts import agent_contract_problem
from portal.engines.shapes import container_info
from portal.extensions import db
from portal.hosts.container_sync import chunks, health_of, sync_containers
from portal.hosts.facts import store_facts
from portal.hosts.gpu_telemetry import agent_readings, store_samples
from portal.hosts.health_status import decide, sick_in
from portal.hosts.models import BOOTSTRAPPING, READY, Host
from portal.hosts.probing import (
    MAX_PARALLEL_CONNECTS,
    AgentConnections,
    Answer,
    ProbeFailed,
    bounded,
)
from portal.hosts.service import on_the_agent_engine, set_statuses
from portal.hosts.sharding import SweepRounds, heartbeat, heartbeat_period_s
from portal.settings.service import get_setting

# Requests in flight at once: enough to hide each agent's latency, few enough that a cold sweep's
# TLS handshakes do not all time out together on a small portal.
MAX_PARALLEL_PROBES = 256


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
    refused: bool = False
    facts: dict[str, Any] | None = None  # the Spectr node's, read from its engine each sweep
    local: bool = False  # the Spectr node: its engine answers on this machine's socket
    gpus: list[dict[str, Any]] = field(default_factory=list)  # readings (gpu_telemetry.py)
    incompatible: str | None = None  # why the portal refuses this agent's contract
    engine: str | None = None  # the configured engine that was asked, where not the agent


@dataclass
class SweepReport:
    hosts: int
    answered: int
    probe_seconds: float
    write_seconds: float
    transitions: int


class AgentProber:
    """Probes of every agent on one event loop, over TLS connections kept between sweeps.

    Health checks are the one place where the portal talks to thousands of agents at once, so
    they skip AgentEngine's retries and breaker (the next sweep is the retry) and share one TLS
    context (see portal.hosts.probing for why not a thread and a client per host).
    """

    def __init__(self, key: tuple[Any, ...], timeout_s: float, keepalive_s: float) -> None:
        self.key = key
        # The portal's client certificate: agents require it.
        self._agents = AgentConnections(agent_client_context(), timeout_s, keepalive_s)

    def probe_all(self, targets: list[ProbeTarget]) -> list[Probe]:
        """Probe `targets` concurrently (at most MAX_PARALLEL_PROBES at once), in order."""
        self._agents.forget_except({target.agent_url for target in targets})
        return self._agents.run(
            lambda: bounded([self._probe(t) for t in targets], MAX_PARALLEL_PROBES)
        )

    def close(self) -> None:
        self._agents.close()

    async def _probe(self, target: ProbeTarget) -> Probe:
        """Ask one agent for its health and containers; never raises."""
        try:
            answer = await self._agents.get(target.agent_url, "/v1/health", target.token)
            if answer.status in (401, 403):
                return Probe(target.host_id, True, error="token refused", refused=True)
            health = _json_object(answer, "/v1/health")
        except (ProbeFailed, ValueError) as exc:
            return Probe(target.host_id, answered=False, error=_describe(exc))
        problem = agent_contract_problem(health.get("contract"))
        if problem:  # nothing else is read from an agent the portal does not speak
            return Probe(target.host_id, True, False, health.get("agent_version"), problem,
                         incompatible=problem)  # fmt: skip
        engine = health.get("engine") or {}
        result = Probe(target.host_id, True, bool(engine.get("reachable")),
                       health.get("agent_version"), engine.get("error"),
                       gpus=agent_readings(health))  # fmt: skip
        if result.engine_ok:
            try:
                listed = await self._agents.get(
                    target.agent_url, "/v1/containers?all=1", target.token
                )
                result.containers = [container_info(item) for item in _json_list(listed)]
            except (ProbeFailed, ValueError, TypeError, KeyError) as exc:
                result.engine_ok, result.error = (
                    False,
                    f"listing containers failed: {_describe(exc)}",
                )
        return result


def _json_object(answer: Answer, path: str) -> dict[str, Any]:
    if answer.status >= 400:
        raise ProbeFailed(f"HTTP {answer.status} from {path}")
    document = answer.json()
    if not isinstance(document, dict):
        raise ValueError(f"{path} did not answer a JSON object")
    return document


def _json_list(answer: Answer) -> list[Any]:
    if answer.status >= 400:
        raise ProbeFailed(f"HTTP {answer.status} from /v1/containers")
    document = answer.json()
    if not isinstance(document, list):
        raise ValueError("/v1/containers did not answer a JSON list")
    return document


def _describe(exc: Exception) -> str:
    return str(exc).strip() or exc.__class__.__name__


_prober: AgentProber | None = None


def prober(timeout_s: float, keepalive_s: float) -> AgentProber:
    """The process's prober, rebuilt when the CA, the client certificate or the timeouts change."""
    global _prober
    client = portal_client_certificate()  # renews it when it nears its expiry
    key = (str(ca_certificate_path()), client.stat().st_mtime_ns, timeout_s, keepalive_s)
    if _prober is None or _prober.key != key:
        if _prober is not None:
            _prober.close()
        _prober = AgentProber(key, timeout_s, keepalive_s)
    return _prober


def probe_targets(where: ColumnElement[bool] | None = None) -> list[ProbeTarget]:
    """Every host with an installed agent that is not being bootstrapped right now, and that
    configuration leaves on the agent engine (see engine_probes.py for the others).

    `where` narrows them down (a worker's shard of the fleet).
    """
    sealed = type_coerce(Host.agent_token, String)  # decrypted below, through the cache
    query = select(Host.id, Host.agent_url, sealed).where(
        Host.is_local.is_(False),
        Host.bootstrapped_at.is_not(None),
        Host.agent_url.is_not(None),
        Host.status != BOOTSTRAPPING,
        on_the_agent_engine(),
    )
    rows = db.session.execute(query if where is None else query.where(where)).all()
    return [ProbeTarget(row[0], row[1], _token(row[2])) for row in rows if row[1] and row[2]]


# Agent tokens by their ciphertext: decrypting every token each sweep cost 0.1 ms a host.
# A rotated token is stored under new ciphertext, so it is never answered from here.
_tokens: dict[str, str] = {}


def _token(sealed: str) -> str:
    token = _tokens.get(sealed)
    if token is None:
        if len(_tokens) > 100_000:  # tokens of deleted hosts and rotations: start over
            _tokens.clear()
        token = _tokens[sealed] = secret_box().decrypt(sealed)
    return token


def check_all_hosts(
    timeout_s: float = 5.0, keepalive_s: float = 120.0, where: ColumnElement[bool] | None = None
) -> SweepReport:
    """Probe every agent (of `where`), the Spectr node's engine (when `where` takes it in) and
    the engines of the hosts on a configured engine concurrently and record the results;
    return timings."""
    from portal.hosts.engine_probes import ENGINE_PROBE_CALLS, engine_probes, engine_targets

    targets = probe_targets(where)
    engine_hosts = engine_targets(where)
    node = _local_node_in(where)
    db.session.rollback()  # no transaction stays open while the probes run
    seen_at, started = utcnow(), time.perf_counter()
    probes: list[Probe] = []
    engines = engine_probes().start(engine_hosts) if engine_hosts else []
    with ThreadPoolExecutor(1) as executor:
        local = executor.submit(_probe_local_node, node, timeout_s) if node else None
        if targets:
            probes = prober(timeout_s, keepalive_s).probe_all(targets)
        probes += [local.result()] if local else []
    if engines:
        probes += engine_probes().results(engines, ENGINE_PROBE_CALLS * timeout_s)
    probed = time.perf_counter()
    transitions = record_probes(probes, seen_at)
    written = time.perf_counter()
    answered = sum(1 for p in probes if p.answered)
    return SweepReport(len(probes), answered, probed - started, written - probed, transitions)


def _local_node_in(where: ColumnElement[bool] | None) -> int | None:
    """The Spectr node's host id when this sweep (this worker's shard) covers it."""
    from portal.hosts.service import ensure_local_host

    node = ensure_local_host().id  # from the first sweep on, not only once a page was opened
    if where is None:
        return node
    return db.session.scalar(select(Host.id).where(Host.id == node, where))


def _probe_local_node(host_id: int, timeout_s: float) -> Probe:
    from portal.hosts.local_node import probe_local_node

    return probe_local_node(host_id, timeout_s)


def record_probes(probes: list[Probe], seen_at: datetime | None = None) -> int:
    """Write one sweep's results in one transaction; return how many statuses changed.

    A sweep touches every host row (last seen) but changes a status only now and then: hosts
    that get the same values are written by one UPDATE, and only the hosts whose containers
    changed since the last sweep have their container rows read and written, and their
    applications' status followed. `seen_at` is when the probes started (by default now):
    what they saw is that old.
    """
    if not probes:
        return 0
    by_id = {p.host_id: p for p in probes}
    now = seen_at or utcnow()
    rows = db.session.execute(
        select(
            Host.id, Host.status, Host.status_reason, Host.missed_checks, Host.containers_digest
        ).where(Host.id.in_(by_id), Host.status != BOOTSTRAPPING)
    ).all()
    owned = applications_by_host(
        row[0] for row in rows if _may_be_sick(by_id[row[0]]) or sick_in(row[1], row[2])
    )
    refreshed = _hosts_with_apps_read_since_their_last_sweep(list(by_id))
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    changes = []
    for host_id, status, reason, missed, _ in rows:
        result = by_id[host_id]
        was_sick = sick_in(status, reason)
        row_values, target = decide(result, missed or 0, now, owned.get(host_id), was_sick)
        groups.setdefault(tuple(sorted(row_values.items())), []).append(host_id)
        if target is not None and (
            target[0] != status or (target[0] != READY and target[1] != reason)
        ):
            changes.append((host_id, status, *target))
    for group, host_ids in groups.items():
        for chunk in chunks(host_ids):
            db.session.execute(
                update(Host).where(Host.id.in_(chunk)).values(dict(group)),
                execution_options={"synchronize_session": False},
            )
    transitions = set_statuses(changes)
    digests = {row[0]: row[4] for row in rows}
    answered = [p for p in probes if p.answered and p.engine_ok and p.host_id in digests]
    changed = sync_containers(((p.host_id, p.containers) for p in answered), now, digests)
    _store_node_facts(answered)
    store_samples(((p.host_id, p.gpus) for p in probes if p.gpus and p.host_id in digests), now)
    followed = set(changed) | refreshed
    follow_host_containers(
        {p.host_id: p.containers for p in answered if p.host_id in followed}, now
    )
    db.session.commit()
    return transitions


def _hosts_with_apps_read_since_their_last_sweep(host_ids: list[int]) -> set[int]:
    """Hosts with an application whose status was read from the engine after the host's last
    sweep (a deploy, a refresh): this sweep must win over that reading even where the host's
    containers did not change, as it is newer. Read before this sweep moves last_seen_at."""
    from portal.apps.models import Application
    from portal.apps.rules import REMOVED

    query = (
        select(Application.host_id)
        .join(Host, Host.id == Application.host_id)
        .where(Application.status != REMOVED, Host.last_seen_at.is_not(None))
        .where(
            Application.status_checked_at.is_(None)
            | (Application.status_checked_at > Host.last_seen_at)
        )
        .distinct()
    )
    wanted = set(host_ids)
    return {host_id for host_id in db.session.scalars(query) if host_id in wanted}


def _may_be_sick(result: Probe) -> bool:
    """Whether a probe shows a container that degrades its host if Spectr owns it."""
    return any(health_of(c) == "unhealthy" or c.state == "restarting" for c in result.containers)


def _store_node_facts(probes: list[Probe]) -> None:
    for probe in probes:
        if probe.facts is not None:
            host = db.session.get_one(Host, probe.host_id)
            if host.facts != probe.facts:
                store_facts(host, probe.facts)


def _interval(app: Any) -> float:
    return float(get_setting("health_check_interval_seconds"))


def probe_timeout_s() -> float:
    """Timeout of each request of a periodic sweep: half the interval, 1 to 5 s."""
    return max(1.0, min(5.0, _interval(None) / 2))


def longest_sweep_s(targets: int) -> float:
    """How long a sweep may still use the tokens it read at its start.

    Each host: a connection (handshakes MAX_PARALLEL_CONNECTS at a time, each at most the
    connect timeout) and two requests (MAX_PARALLEL_PROBES hosts at a time).
    """
    timeout, hosts = probe_timeout_s(), max(targets, 1)
    connecting = min(3.0, timeout) * math.ceil(hosts / MAX_PARALLEL_CONNECTS)
    return connecting + 2 * timeout * math.ceil(hosts / MAX_PARALLEL_PROBES) + 1.0


_rounds = SweepRounds(WORKER_ID)


@periodic_job("host_health_checks", lambda app: 0.5, every_worker=True)
def run_health_checks() -> None:
    """Periodic job: this worker's shard of the fleet, once per round (see hosts.sharding)."""
    interval = _interval(None)
    _rounds.tick(
        interval,
        lambda where: check_all_hosts(probe_timeout_s(), 3 * interval, where),
    )


@periodic_job(
    "health_sweep_heartbeat", lambda app: heartbeat_period_s(_interval(app)), every_worker=True
)
def send_heartbeat() -> None:
    """Periodic job: tell the other workers this one still takes part in health sweeps."""
    heartbeat(WORKER_ID)
