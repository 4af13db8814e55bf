"""Hosts reached through an engine that configuration chooses (SPECTR_HOST_ENGINES, the
`spectr.engines` entry points) in the health sweep.

Such a host may run no agent at all, so the agents' probe (health.py) does not reach it: the
sweep asks its engine instead, through the ContainerEngine contract (health, containers, facts),
and records the answer as it records an agent's. An engine is a package's blocking code, so
each host is probed in a thread of its own (never on the agents' event loop), at most
MAX_PARALLEL_ENGINE_PROBES at once; a host whose engine has not answered by the end of the
sweep counts as a missed check, and is not asked again until that call has returned.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, inspect, not_, select

from portal.engines import EngineError
from portal.extensions import db
from portal.hosts.health import Probe
from portal.hosts.models import BOOTSTRAPPING, Host
from portal.hosts.service import (
    configured_engines,
    engine_for,
    engine_name_for,
    on_the_agent_engine,
)

MAX_PARALLEL_ENGINE_PROBES = 16
# Calls of one probe (health, containers, facts): each within the sweep's per-request timeout.
ENGINE_PROBE_CALLS = 3


@dataclass(frozen=True)
class EngineTarget:
    host: Host  # a copy of the row's columns, outside any session: threads read it
    engine: str


def engine_targets(where: ColumnElement[bool] | None = None) -> list[EngineTarget]:
    """Every host other than the Spectr node whose configured engine is not the built-in agent,
    and that is not being bootstrapped right now; `where` narrows them down (a shard)."""
    if all(engine == "agent" for engine in configured_engines().values()):
        return []  # the default: every remote host is an agent's, and no query is made
    query = select(Host).where(
        Host.is_local.is_(False), Host.status != BOOTSTRAPPING, not_(on_the_agent_engine())
    )
    hosts = db.session.scalars(query if where is None else query.where(where)).all()
    return [EngineTarget(_detached(host), engine_name_for(host)) for host in hosts]


def _detached(host: Host) -> Host:
    """A transient Host with the row's column values: what the engine's factory is given."""
    return Host(**{column.key: getattr(host, column.key) for column in inspect(Host).column_attrs})


class EngineProbes:
    """The engine probes of one process, across sweeps."""

    def __init__(self) -> None:
        self._threads = ThreadPoolExecutor(
            MAX_PARALLEL_ENGINE_PROBES, thread_name_prefix="engine-probe"
        )
        self._pending: dict[int, Future[Probe]] = {}  # by host id: calls not returned yet

    def start(self, targets: list[EngineTarget]) -> list[tuple[EngineTarget, Future[Probe]]]:
        """Start probing `targets` in threads (a host still being probed is not asked again)."""
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        started = []
        for target in targets:
            host_id = target.host.id
            future = self._pending.get(host_id)
            if future is None or future.done():
                future = self._threads.submit(_probe_engine, app, target)
                self._pending[host_id] = future
            started.append((target, future))
        return started

    def results(
        self, started: list[tuple[EngineTarget, Future[Probe]]], timeout_s: float
    ) -> list[Probe]:
        """The probes' answers; one not back within `timeout_s` is a missed check."""
        wait([future for _, future in started], timeout=timeout_s)
        probes = []
        for target, future in started:
            if future.done():
                self._pending.pop(target.host.id, None)
                probes.append(future.result())
            else:
                error = f"no answer in {timeout_s:g}s (the call is still running)"
                probes.append(Probe(target.host.id, False, error=error, engine=target.engine))
        return probes


def _probe_engine(app: Flask, target: EngineTarget) -> Probe:
    """Ask one host's engine for its health, containers and facts; never raises.

    The engine is the host's only way in: an engine that does not answer, or raises, means the
    host did not answer (unreachable after the missed checks an agent gets).
    """
    host_id, name = target.host.id, target.engine
    try:
        with app.app_context(), engine_for(target.host) as engine:
            health = engine.health()
            if not health.reachable:
                error = health.contract_problem or health.error or "the engine does not answer"
                return Probe(host_id, False, error=error, engine=name)
            containers = engine.list_containers(include_stopped=True)
            facts = _facts(engine)
    except Exception as exc:  # a package's code: whatever it raises, the host did not answer
        return Probe(host_id, False, error=_describe(exc), engine=name)
    return Probe(host_id, True, True, containers=containers, facts=facts, engine=name)


def _facts(engine: Any) -> dict[str, Any] | None:
    try:
        facts = engine.facts()
    except EngineError:  # the containers came: the host answers, its facts stay as they were
        return None
    return facts if isinstance(facts, dict) else None


def _describe(exc: Exception) -> str:
    message = exc.message if isinstance(exc, EngineError) else str(exc).strip()
    return message or exc.__class__.__name__


_probes: EngineProbes | None = None


def engine_probes() -> EngineProbes:
    """The process's engine probes (their threads are made on first use)."""
    global _probes
    if _probes is None:
        _probes = EngineProbes()
    return _probes
