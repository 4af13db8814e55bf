"""Health checks: ask every bootstrapped host's agent how it is, and record what changed.

A sweep probes all agents concurrently (a bounded thread pool, per-request timeouts, no
retries: the next sweep is the retry), then writes the results in one transaction: status
transitions with their reasons, last-seen times, and the container states of each host.
A host becomes `unreachable` after 2 missed sweeps in a row and `ready` again by itself.

Only Spectr's own applications make a host `degraded`: a crash-looping container that someone
started by hand, or that another tool manages, is recorded and shown on the host page, but it
says nothing about whether Spectr's work on that host is healthy.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, delete, select, type_coerce, update

from portal.apps.lifecycle import HostApplications, applications_by_host
from portal.core.bulk import insert_rows
from portal.core.operations.runner import WORKER_ID
from portal.core.pki import agent_client_context, ca_certificate_path, portal_client_certificate
from portal.core.secrets_box import secret_box
from portal.core.ticker import periodic_job
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo
from portal.engines.shapes import container_info
from portal.extensions import db
from portal.hosts.models import BOOTSTRAPPING, DEGRADED, READY, UNREACHABLE, Host, HostContainer
from portal.hosts.probing import (
    MAX_PARALLEL_CONNECTS,
    AgentConnections,
    Answer,
    ProbeFailed,
    bounded,
)
from portal.hosts.service import set_statuses
from portal.hosts.sharding import SweepRounds, heartbeat, heartbeat_period_s
from portal.settings.service import get_setting

MISSED_CHECKS_FOR_UNREACHABLE = 2
# Requests in flight at once: enough to hide each agent's latency, few enough that a cold sweep's
# TLS handshakes do not all time out together on a small portal.
MAX_PARALLEL_PROBES = 256
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
    refused: bool = False


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
        engine = health.get("engine") or {}
        result = Probe(target.host_id, True, bool(engine.get("reachable")),
                       health.get("agent_version"), engine.get("error"))  # fmt: skip
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
    """Every host with an installed agent that is not being bootstrapped right now.

    `where` narrows them down (a worker's shard of the fleet).
    """
    sealed = type_coerce(Host.agent_token, String)  # decrypted below, through the cache
    query = select(Host.id, Host.agent_url, sealed).where(
        Host.is_local.is_(False),
        Host.bootstrapped_at.is_not(None),
        Host.agent_url.is_not(None),
        Host.status != BOOTSTRAPPING,
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
    """Probe every agent (of `where`) concurrently and record the results; return timings."""
    targets = probe_targets(where)
    db.session.rollback()  # no transaction stays open while the probes run
    started = time.perf_counter()
    probes: list[Probe] = []
    if targets:
        probes = prober(timeout_s, keepalive_s).probe_all(targets)
    probed = time.perf_counter()
    transitions = record_probes(probes)
    written = time.perf_counter()
    answered = sum(1 for p in probes if p.answered)
    return SweepReport(len(targets), answered, probed - started, written - probed, transitions)


def record_probes(probes: list[Probe]) -> int:
    """Write one sweep's results in one transaction; return how many statuses changed.

    A sweep touches every host row (last seen) but changes a status only now and then: hosts
    that get the same values are written by one UPDATE, and only the hosts whose containers
    changed since the last sweep have their container rows read and written.
    """
    if not probes:
        return 0
    by_id = {p.host_id: p for p in probes}
    now = utcnow()
    rows = db.session.execute(
        select(
            Host.id, Host.status, Host.status_reason, Host.missed_checks, Host.containers_digest
        ).where(Host.id.in_(by_id), Host.status != BOOTSTRAPPING)
    ).all()
    owned = applications_by_host(row[0] for row in rows if _may_be_sick(by_id[row[0]]))
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    changes = []
    for host_id, status, reason, missed, _ in rows:
        result = by_id[host_id]
        row_values, target = _decide(result, missed or 0, now, owned.get(host_id))
        groups.setdefault(tuple(sorted(row_values.items())), []).append(host_id)
        if target is not None and (
            target[0] != status or (target[0] != READY and target[1] != reason)
        ):
            changes.append((host_id, status, *target))
    for group, host_ids in groups.items():
        for chunk in _chunks(host_ids):
            db.session.execute(
                update(Host).where(Host.id.in_(chunk)).values(dict(group)),
                execution_options={"synchronize_session": False},
            )
    transitions = set_statuses(changes)
    digests = {row[0]: row[4] for row in rows}
    _sync_containers(
        [p for p in probes if p.answered and p.engine_ok and p.host_id in digests], digests
    )
    db.session.commit()
    return transitions


def _chunks(ids: list[int], size: int = 5000) -> list[list[int]]:
    """Id lists short enough for one IN (...) on every database (SQLite caps parameters)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _may_be_sick(result: Probe) -> bool:
    """Whether a probe shows a container that degrades its host if Spectr owns it."""
    return any(_health(c) == "unhealthy" or c.state == "restarting" for c in result.containers)


def _decide(
    result: Probe, missed: int, now: Any, owned: HostApplications | None
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The column values a probe sets, and the (status, reason) it calls for, if any."""
    if not result.answered:
        missed += 1
        if missed >= MISSED_CHECKS_FOR_UNREACHABLE:
            reason = f"Agent did not answer {missed} checks in a row: {result.error}"
            return {"missed_checks": missed}, (UNREACHABLE, reason)
        return {"missed_checks": missed}, None
    row_values: dict[str, Any] = {"missed_checks": 0, "last_seen_at": now}
    if result.agent_version:
        row_values["agent_version"] = result.agent_version
    problem = _problem(result, owned or HostApplications())
    if problem:
        return row_values, (DEGRADED, problem)
    return row_values, (READY, "Agent and Docker engine answer.")


def _problem(result: Probe, owned: HostApplications) -> str | None:
    if result.refused:
        return "The agent refuses the portal's token; bootstrap the host again."
    if not result.engine_ok:
        return f"Agent answers but the Docker engine does not: {result.error}"
    sick = [
        c.name
        for c in result.containers
        if owned.own(c.name, c.labels) and (_health(c) == "unhealthy" or c.state == "restarting")
    ]
    if sick:
        return f"Unhealthy container(s): {', '.join(sorted(sick)[:10])}"
    return None


_CONTAINER_COLUMNS = ("name", "image", "state", "health", "exit_code", "restart_count", "labels")


def _sync_containers(probes: list[Probe], digests: dict[int, str | None]) -> None:
    """Insert new containers, update changed ones, delete the ones that are gone.

    Each host keeps a digest of the container values last stored; a host whose listing has
    the same digest is skipped without reading its rows, so a sweep where nothing changed
    reads and writes no container rows at all.
    """
    seen: dict[int, dict[str, dict[str, Any]]] = {}
    new_digests: dict[str, list[int]] = {}
    for result in probes:
        values = {info.id: _container_values(info) for info in result.containers}
        digest = _digest(values)
        if digest != digests.get(result.host_id):
            seen[result.host_id] = values
            new_digests.setdefault(digest, []).append(result.host_id)
    if not seen:
        return
    columns = [getattr(HostContainer, name) for name in _CONTAINER_COLUMNS]
    query = select(HostContainer.id, HostContainer.host_id, HostContainer.container_id, *columns)
    known: dict[tuple[int, str], Any] = {}
    for chunk in _chunks(list(seen)):
        for row in db.session.execute(query.where(HostContainer.host_id.in_(chunk))):
            known[(row.host_id, row.container_id)] = row
    inserts, updates, now = [], [], utcnow()
    for host_id, values in seen.items():
        for container_id, current in values.items():
            row = known.pop((host_id, container_id), None)
            if row is None:
                inserts.append(
                    {"host_id": host_id, "container_id": container_id, **current, "updated_at": now}
                )
            elif any(getattr(row, name) != current[name] for name in _CONTAINER_COLUMNS):
                updates.append({"id": row.id, **current, "updated_at": now})
    # A first sweep finds every container: 100,000 rows at 10,000 hosts (COPY on Postgres).
    insert_rows(db.session.connection(), HostContainer.__table__, inserts)
    if updates:
        db.session.execute(update(HostContainer), updates)
    for chunk in _chunks([row.id for row in known.values()]):
        db.session.execute(delete(HostContainer).where(HostContainer.id.in_(chunk)))
    for digest, host_ids in new_digests.items():  # hosts listing the same containers share one
        for chunk in _chunks(host_ids):
            db.session.execute(
                update(Host).where(Host.id.in_(chunk)).values(containers_digest=digest),
                execution_options={"synchronize_session": False},
            )


def _digest(values: dict[str, dict[str, Any]]) -> str:
    """A short fingerprint of a host's containers as stored (ids and every synced column).

    repr() of the values in the agent's order: ten times cheaper than sorted JSON, and an agent
    that lists the same containers in another order only costs one comparison of the rows.
    """
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


def _container_values(info: ContainerInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "image": info.image or "",
        "state": info.state or "unknown",
        "health": _health(info),
        "exit_code": info.exit_code if info.exit_code is not None else _exit_code(info),
        "restart_count": info.restart_count,
        "labels": info.labels,
    }


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
