"""Bearer-token check and per-client back-off after repeated failures."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict


def hash_token(token: str) -> str:
    """Return the hex SHA-256 stored in the agent's config for a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenVerifier:
    """Compare an Authorization header with the configured token hashes in constant time.

    More than one hash is accepted only while a rotation switches the portal to a new token.
    """

    def __init__(self, *token_sha256: str) -> None:
        self._expected = [value.lower().encode() for value in token_sha256 if value]

    def verify(self, authorization: str | None) -> bool:
        """Tell whether the header carries one of the accepted bearer tokens."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        presented = hash_token(token.strip()).encode()
        # Compare with every hash, not stopping at a match: the time says nothing about which.
        matches = [hmac.compare_digest(presented, expected) for expected in self._expected]
        return any(matches)


class FailureBackoff:
    """Lock a client address out for a doubling period once it fails too often."""

    def __init__(
        self,
        free_failures: int = 5,
        base_lockout_s: float = 1.0,
        max_lockout_s: float = 300.0,
        max_clients: int = 10_000,
    ) -> None:
        self.free_failures = free_failures
        self.base_lockout_s = base_lockout_s
        self.max_lockout_s = max_lockout_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Return seconds the client must still wait, 0 when it may try."""
        with self._lock:
            count, locked_until = self._failures.get(client, (0, 0.0))
        return max(0.0, locked_until - time.monotonic()) if count >= self.free_failures else 0.0

    def record_failure(self, client: str) -> None:
        """Count a failed attempt and extend the lockout past the free allowance."""
        with self._lock:
            count, _ = self._failures.pop(client, (0, 0.0))
            count += 1
            excess = count - self.free_failures
            lockout = min(self.base_lockout_s * 2**excess, self.max_lockout_s) if excess >= 0 else 0
            self._failures[client] = (count, time.monotonic() + lockout)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def record_success(self, client: str) -> None:
        """Forget the client's failures."""
        with self._lock:
            self._failures.pop(client, None)
