"""Health checks: ask every bootstrapped host's agent how it is, and record what changed.

A sweep probes all agents concurrently (a bounded thread pool, per-request timeouts, no
retries: the next sweep is the retry), and the Spectr node's own engine beside them
(local_node.py), then writes the results in one transaction: status transitions with their
reasons, last-seen times, the container states of each host, and the status of the
applications on it. A host becomes `unreachable` after 2 missed sweeps in a row and `ready`
again by itself.

Only Spectr's own applications make a host `degraded`: a crash-looping container that someone
started by hand, or that another tool manages, is recorded and shown on the host page, but it
says nothing about whether Spectr's work on that host is healthy.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from portal.apps.lifecycle import applications_by_host, follow_host_containers
from portal.core.pki import agent_client_context, ca_certificate_path, portal_client_certificate
from portal.core.ticker import periodic_job
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo
from portal.engines.shapes import container_info
from portal.extensions import db
from portal.hosts.container_sync import sync_containers
from portal.hosts.facts import store_facts
from portal.hosts.health_status import decide, sick_in
from portal.hosts.models import BOOTSTRAPPING, READY, Host
from portal.hosts.service import set_status
from portal.settings.service import get_setting

MAX_PARALLEL_PROBES = 64


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


@dataclass
class SweepReport:
    hosts: int
    answered: int
    probe_seconds: float
    write_seconds: float
    transitions: int


class AgentProber:
    """HTTPS clients of every agent sharing one TLS context, kept between sweeps.

    Health checks are the one place where the portal talks to a thousand agents at once, so
    they skip AgentEngine's retries and breaker (the next sweep is the retry) and share one TLS
    context; each host keeps its own small client, as one pool over a thousand origins is slow.
    """

    def __init__(self, key: tuple[Any, ...], timeout_s: float, keepalive_s: float) -> None:
        self.key = key
        self._tls = agent_client_context()  # the portal's client certificate: agents require it
        self._timeout = httpx.Timeout(timeout_s, connect=min(3.0, timeout_s))
        self._limits = httpx.Limits(max_connections=2, keepalive_expiry=keepalive_s)
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def client(self, agent_url: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(agent_url)
            if client is None:
                client = self._clients[agent_url] = httpx.Client(
                    base_url=agent_url, verify=self._tls, timeout=self._timeout,
                    limits=self._limits, headers={"User-Agent": "spectr-portal-health"},
                    trust_env=False,  # agents are reached directly, never through a proxy
                )  # fmt: skip
            return client

    def forget_except(self, agent_urls: set[str]) -> None:
        with self._lock:
            for url in set(self._clients) - agent_urls:
                self._clients.pop(url).close()

    def close(self) -> None:
        self.forget_except(set())

    def probe(self, target: ProbeTarget) -> Probe:
        """Ask one agent for its health and containers; never raises."""
        headers = {"Authorization": f"Bearer {target.token}"}
        client = self.client(target.agent_url)
        try:
            response = client.get("/v1/health", headers=headers)
            if response.status_code in (401, 403):
                return Probe(target.host_id, True, error="token refused", refused=True)
            response.raise_for_status()
            health = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Probe(target.host_id, answered=False, error=_describe(exc))
        engine = health.get("engine") or {}
        result = Probe(target.host_id, True, bool(engine.get("reachable")),
                       health.get("agent_version"), engine.get("error"))  # fmt: skip
        if result.engine_ok:
            try:
                listed = client.get("/v1/containers", params={"all": 1}, headers=headers)
                listed.raise_for_status()
                result.containers = [container_info(item) for item in listed.json()]
            except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
                result.engine_ok, result.error = (
                    False,
                    f"listing containers failed: {_describe(exc)}",
                )
        return result


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
    return [ProbeTarget(row[0], row[1], row[2]) for row in rows if row[1] and row[2]]


def check_all_hosts(timeout_s: float = 5.0, keepalive_s: float = 120.0) -> SweepReport:
    """Probe every agent and the Spectr node's engine concurrently and record the results."""
    from portal.hosts.local_node import probe_local_node
    from portal.hosts.service import ensure_local_host

    targets = probe_targets()
    node = ensure_local_host().id  # from the first sweep on, not only once a page was opened
    db.session.rollback()  # no transaction stays open while the probes run
    seen_at, started = utcnow(), time.perf_counter()
    probes: list[Probe] = []
    if targets:
        client = prober(timeout_s, keepalive_s)
        client.forget_except({target.agent_url for target in targets})
        with ThreadPoolExecutor(min(MAX_PARALLEL_PROBES, len(targets))) as executor:
            local = executor.submit(probe_local_node, node, timeout_s) if node else None
            probes = list(executor.map(client.probe, targets))
            probes += [local.result()] if local else []
    elif node:
        probes = [probe_local_node(node, timeout_s)]
    probed = time.perf_counter()
    transitions = record_probes(probes, seen_at)
    written = time.perf_counter()
    answered = sum(1 for p in probes if p.answered)
    return SweepReport(len(probes), answered, probed - started, written - probed, transitions)


def record_probes(probes: list[Probe], seen_at: datetime | None = None) -> int:
    """Write one sweep's results in one transaction; return how many statuses changed.

    Rows are read as plain tuples and written with executemany: a sweep over a thousand
    hosts touches every host row (last seen) but changes a status only now and then.
    `seen_at` is when the probes started (by default now): what they saw is that old.
    """
    if not probes:
        return 0
    by_id = {p.host_id: p for p in probes}
    now = seen_at or utcnow()
    rows = db.session.execute(
        select(Host.id, Host.status, Host.status_reason, Host.missed_checks).where(
            Host.id.in_(by_id), Host.status != BOOTSTRAPPING
        )
    ).all()
    owned = applications_by_host(row[0] for row in rows)
    values, changes = [], []
    for host_id, status, reason, missed in rows:
        result = by_id[host_id]
        was_sick = sick_in(status, reason)
        row_values, target = decide(result, missed or 0, now, owned.get(host_id), was_sick)
        values.append({"id": host_id, **row_values})
        if target is not None and (
            target[0] != status or (target[0] != READY and target[1] != reason)
        ):
            changes.append((host_id, *target))
    if values:
        db.session.execute(update(Host), values)
    transitions = sum(
        set_status(db.session.get_one(Host, host_id), status, reason)
        for host_id, status, reason in changes
    )
    recorded = {row[0] for row in rows}
    answered = [p for p in probes if p.answered and p.engine_ok and p.host_id in recorded]
    sync_containers(((p.host_id, p.containers) for p in answered), now)
    _store_node_facts(answered)
    follow_host_containers([p.host_id for p in answered], now)
    db.session.commit()
    return transitions


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
    """How long a sweep may still use the tokens it read at its start (two requests a host)."""
    return 2 * probe_timeout_s() * math.ceil(max(targets, 1) / MAX_PARALLEL_PROBES) + 1.0


@periodic_job("host_health_checks", _interval)
def run_health_checks() -> None:
    """Periodic job: one sweep over every host's agent."""
    check_all_hosts(timeout_s=probe_timeout_s(), keepalive_s=3 * _interval(None))
