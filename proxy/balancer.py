"""Replica choice within a pool: health-aware round robin and least connections."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.config import Pool, Replica


@dataclass
class ReplicaState:
    """What the proxy has observed about one replica; survives config changes."""

    inflight: int = 0
    down_until: float = 0.0
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
        """Tell whether a replica may get traffic now."""
        if replica.health == "unhealthy":
            return False
        state = self.state(replica)
        return state.check_ok is not False and state.down_until <= now

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

    def acquire(self, replica: Replica) -> None:
        """Count a request that went to the replica."""
        self.state(replica).inflight += 1

    def release(self, replica: Replica) -> None:
        """Count a request to the replica as finished."""
        state = self.state(replica)
        state.inflight = max(0, state.inflight - 1)

    def mark_down(self, replica: Replica, for_s: float) -> None:
        """Skip a replica that refused a connection for a while."""
        self.state(replica).down_until = time.monotonic() + for_s

    def mark_check(self, replica: Replica, ok: bool) -> None:
        """Record the result of an active health check."""
        state = self.state(replica)
        state.check_ok = ok
        if ok:
            state.down_until = 0.0

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
