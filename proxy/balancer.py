"""Replica choice within a pool: health-aware round robin and least connections.

Passive health is a circuit breaker per replica: a failure opens it for the pool's `down_for_s`;
when that period ends (or an active health check passes) it is half-open and the next request
that picks the replica is its one probe, while the others skip it; the probe's success closes
the breaker, its failure opens it again for twice as long (up to MAX_DOWN_FOR_S).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.config import Pool, Replica

# A replica that keeps failing its probes is retried at least this often.
MAX_DOWN_FOR_S = 60.0


@dataclass
class ReplicaState:
    """What the proxy has observed about one replica; survives config changes."""

    inflight: int = 0
    # Open breaker until then; 0.0 when closed. Past but non-zero: half-open.
    down_until: float = 0.0
    down_for_s: float = 0.0  # the period the breaker last opened for
    probing: bool = False  # the half-open replica's one probe request is under way
    check_ok: bool | None = None


class Balancer:
    """Choose replicas and keep their runtime state (in-flight count, passive/active health)."""

    def __init__(self) -> None:
        self._states: dict[str, ReplicaState] = {}
        self._turns: dict[str, itertools.count[int]] = {}

    def state(self, replica: Replica) -> ReplicaState:
        """Return the runtime state of a replica, creating it on first sight."""
        state = self._states.get(replica.id)
        if state is None:
            state = self._states[replica.id] = ReplicaState()
        return state

    def is_available(self, replica: Replica, now: float) -> bool:
        """Tell whether a replica may get traffic now (a half-open one: when no probe is out)."""
        if replica.health == "unhealthy":
            return False
        state = self.state(replica)
        return state.check_ok is not False and state.down_until <= now and not state.probing

    def choose(self, pool: Pool, exclude: Iterable[str] = ()) -> Replica | None:
        """Pick the next replica of the pool, or None when none is available."""
        now = time.monotonic()
        skipped = set(exclude)
        candidates = [r for r in pool.replicas if r.id not in skipped and self.is_available(r, now)]
        if not candidates:
            return None
        if pool.strategy == "least_connections":
            # Rotating the start keeps ties from always landing on the first replica.
            offset = next(self._turn(pool.name)) % len(candidates)
            rotated = candidates[offset:] + candidates[:offset]
            return min(rotated, key=lambda r: self.state(r).inflight)
        return candidates[next(self._turn(pool.name)) % len(candidates)]

    def acquire(self, replica: Replica) -> bool:
        """Count a request that went to the replica; tell whether it is the replica's probe."""
        state = self.state(replica)
        state.inflight += 1
        if state.down_until:  # chosen while half-open: this request is the probe
            state.probing = True
            return True
        return False

    def release(self, replica: Replica) -> None:
        """Count a request to the replica as finished."""
        state = self.state(replica)
        state.inflight = max(0, state.inflight - 1)

    def mark_down(self, replica: Replica, for_s: float, probe: bool = False) -> None:
        """Open the replica's breaker after a failure (a failed probe: for twice as long)."""
        state = self.state(replica)
        if probe:
            state.probing = False
        if for_s <= 0:
            return
        now = time.monotonic()
        if probe:
            state.down_for_s = min(2 * max(state.down_for_s, for_s), max(for_s, MAX_DOWN_FOR_S))
        elif state.down_until > now:
            return  # already open: requests that were under way do not extend it
        else:
            state.down_for_s = max(state.down_for_s, for_s) if state.probing else for_s
        state.down_until = now + state.down_for_s

    def probe_done(self, replica: Replica, ok: bool | None, for_s: float = 0.0) -> None:
        """End the replica's probe: ok closes the breaker, a failure reopens it, None tells nothing."""
        if ok is False:
            self.mark_down(replica, for_s, probe=True)
            return
        state = self.state(replica)
        state.probing = False
        if ok:
            state.down_until = state.down_for_s = 0.0

    def retry_after_s(self, pool: Pool) -> int:
        """Return whole seconds until a replica of the pool may get traffic again (at least 1)."""
        now = time.monotonic()
        ends = [
            state.down_until
            for replica in pool.replicas
            if replica.health != "unhealthy"
            and (state := self.state(replica)).check_ok is not False
            and state.down_until > now
        ]
        if ends:
            return max(1, math.ceil(min(ends) - now))
        # Nothing passively down: the replicas are unhealthy or probing; the next check may tell.
        return max(1, math.ceil(pool.health_check.interval_s)) if pool.health_check else 1

    def mark_check(self, replica: Replica, ok: bool) -> None:
        """Record the result of an active health check; a pass makes a down replica half-open."""
        state = self.state(replica)
        state.check_ok = ok
        if ok and state.down_until:
            state.down_until = min(state.down_until, time.monotonic())

    def clear_checks(self, replica_ids: set[str]) -> None:
        """Forget active health check results of these replicas."""
        for replica_id in replica_ids & self._states.keys():
            self._states[replica_id].check_ok = None

    def forget_except(self, replica_ids: set[str]) -> None:
        """Drop state of replicas that left the configuration."""
        for gone in set(self._states) - replica_ids:
            del self._states[gone]

    def _turn(self, pool_name: str) -> itertools.count[int]:
        counter = self._turns.get(pool_name)
        if counter is None:
            counter = self._turns[pool_name] = itertools.count()
        return counter
