"""The Spectr node in the health sweep: its facts and containers, from this machine's engine.

No agent runs on the node (the portal drives its Docker socket itself), so the agents' probe
does not reach it; this one asks the local engine the same questions, plus the node's facts,
which for other hosts come from the bootstrap. Without it the node's page showed no OS, CPU
or memory and "No containers seen" while containers ran on it.
"""

from __future__ import annotations

import logging

from portal.engines import EngineError, LocalDockerEngine
from portal.hosts.gpu_telemetry import local_readings
from portal.hosts.health import Probe

log = logging.getLogger(__name__)


def probe_local_node(host_id: int, timeout_s: float) -> Probe:
    """Ask this machine's Docker engine for its health, containers and facts; never raises."""
    try:
        engine = LocalDockerEngine(timeout_s=max(1, round(timeout_s)))
    except Exception as exc:  # no socket, no permission: the SDK raises on connecting
        return Probe(host_id, answered=True, error=_describe(exc), local=True)
    with engine:
        health = engine.health()
        if not health.reachable:
            return Probe(host_id, answered=True, error=health.error, local=True)
        try:
            containers = engine.list_containers(include_stopped=True)
            facts = engine.facts()
        except EngineError as exc:
            error = f"listing containers failed: {exc.message}"
            return Probe(host_id, answered=True, error=error, local=True)
    return Probe(host_id, True, True, containers=containers, facts=facts, local=True,
                 gpus=local_readings())  # fmt: skip


def _describe(exc: Exception) -> str:
    log.warning("the local Docker engine cannot be reached: %s", exc)
    return str(exc).strip() or exc.__class__.__name__
