"""Retry with exponential backoff and full jitter, and a per-host circuit breaker."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from portal.engines.errors import Unavailable


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Return a random wait before retry number attempt (0-based): full jitter."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


class CircuitBreaker:
    """Fail fast for a host after consecutive failures; let one trial call through after a rest."""

    def __init__(self, failure_threshold: int = 5, reset_timeout_s: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """Return closed, open or half-open."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            resting = time.monotonic() - self._opened_at < self.reset_timeout_s
            return "open" if resting else "half-open"

    def before_call(self, host: str) -> None:
        """Raise Unavailable while open; in half-open admit a single trial call."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = time.monotonic() - self._opened_at
            if waited < self.reset_timeout_s or self._trial_running:
                retry_in = max(0.0, self.reset_timeout_s - waited)
                raise Unavailable(
                    f"{host} is failing; circuit open",
                    {"host": host, "retry_in_s": round(retry_in, 1)},
                )
            self._trial_running = True

    def record_success(self) -> None:
        """Close the circuit."""
        with self._lock:
            self._failures, self._opened_at, self._trial_running = 0, None, False

    def record_failure(self) -> None:
        """Count a failure; open (or re-open) the circuit past the threshold."""
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.failure_threshold:
                self._opened_at = time.monotonic()
            self._trial_running = False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(
    host: str, failure_threshold: int = 5, reset_timeout_s: float = 30.0
) -> CircuitBreaker:
    """Return the process-wide breaker of a host, so every client of it shares one state."""
    with _breakers_lock:
        breaker = _breakers.get(host)
        if breaker is None:
            breaker = _breakers[host] = CircuitBreaker(failure_threshold, reset_timeout_s)
        return breaker
