"""What status a health probe calls for: ready, degraded (and why) or unreachable."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from portal.apps.lifecycle import HostApplications
from portal.engines import ContainerInfo
from portal.hosts.container_sync import health_of, started_at, state_age_bounds
from portal.hosts.models import DEGRADED, READY, UNREACHABLE
from portal.monitoring.settings import monitoring_setting

if TYPE_CHECKING:
    from portal.hosts.health import Probe

MISSED_CHECKS_FOR_UNREACHABLE = 2
SICK_PREFIX = "Unhealthy container(s): "


def decide(
    result: Probe,
    missed: int,
    now: Any,
    owned: HostApplications | None,
    was_sick: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The column values a probe sets, and the (status, reason) it calls for, if any."""
    if not result.answered:
        missed += 1
        if missed >= MISSED_CHECKS_FOR_UNREACHABLE:
            who = f"Engine '{result.engine}'" if result.engine else "Agent"
            reason = f"{who} did not answer {missed} checks in a row: {result.error}"
            return {"missed_checks": missed}, (UNREACHABLE, reason)
        return {"missed_checks": missed}, None
    row_values: dict[str, Any] = {"missed_checks": 0, "last_seen_at": now}
    if result.agent_version:
        row_values["agent_version"] = result.agent_version
    problem = _problem(result, owned or HostApplications(), was_sick, now)
    if problem:
        return row_values, (DEGRADED, problem)
    if result.local:
        return row_values, (READY, "This machine's Docker engine answers.")
    if result.engine:
        return row_values, (READY, f"Engine '{result.engine}' answers.")
    return row_values, (READY, "Agent and Docker engine answer.")


def sick_in(status: str, reason: str | None) -> frozenset[str]:
    """The containers a host is degraded for now, as its reason names them."""
    if status != DEGRADED or not (reason or "").startswith(SICK_PREFIX):
        return frozenset()
    return frozenset((reason or "")[len(SICK_PREFIX) :].split(", "))


def _settling(info: ContainerInfo, now: datetime) -> bool:
    """In its state for less than MONITORING_STEADY_SECONDS: caught running between two
    crashes, or stopped for a moment by a restart."""
    steady = float(monitoring_setting("MONITORING_STEADY_SECONDS"))
    if info.state == "running":
        start = started_at(info, None, now)
        return start is not None and (now - start).total_seconds() < steady
    bounds = state_age_bounds(info.status)
    return bounds is not None and bounds[0] < steady


def _problem(
    result: Probe, owned: HostApplications, was_sick: frozenset[str], now: datetime
) -> str | None:
    if result.refused:
        return "The agent refuses the portal's token; bootstrap the host again."
    if result.incompatible:
        return result.incompatible
    if not result.engine_ok and result.local:
        return f"This machine's Docker engine does not answer: {result.error}"
    if not result.engine_ok:
        return f"Agent answers but the Docker engine does not: {result.error}"
    # A container the host is degraded for stays a problem until it has settled: a crash loop
    # caught running between two crashes, or a restart caught stopped, must not flip the host
    # to ready and back.
    sick = [
        c.name
        for c in result.containers
        if owned.own(c.name, c.labels)
        and (
            health_of(c) == "unhealthy"
            or c.state == "restarting"
            or (c.name in was_sick and _settling(c, now))
        )
    ]
    if sick:
        return SICK_PREFIX + ", ".join(sorted(sick)[:10])
    return None
