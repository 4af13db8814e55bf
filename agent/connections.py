"""Connection slots: deadlines for TLS handshakes and request heads, eviction, per-address caps.

A thread serves each connection, and a thread blocked in a read waits for its socket. So that
silent or slow clients cannot hold every slot, each connection is tracked through its phases
and a reaper shuts down the socket of one whose phase outlived its deadline: the blocked read
returns and the thread ends. When every slot is taken, a new connection evicts the connection
that has waited longest for a request, unauthenticated ones first; one being served is never
evicted.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("spectr_agent")

HANDSHAKE, HEAD, IDLE, BUSY = "handshake", "head", "idle", "busy"
_REAP_EVERY_S = 0.25


@dataclass(eq=False)
class Slot:
    """One connection: its client address, phase, deadline and a socket to shut it down by."""

    client: str
    watch: socket.socket  # a dup of the connection: shutdown() on it wakes the blocked reader
    phase: str = HANDSHAKE
    deadline: float | None = None
    authenticated: bool = False
    since: float = field(default_factory=time.monotonic)
    closed: bool = False


class ConnectionTracker:
    """Admit, follow and close connections; thread-safe."""

    def __init__(
        self,
        max_connections: int,
        max_unauthenticated_per_client: int,
        handshake_s: float,
        head_s: float,
        idle_s: float,
    ) -> None:
        self.max_connections = max_connections
        self.per_client = max_unauthenticated_per_client
        self.handshake_s, self.head_s, self.idle_s = handshake_s, head_s, idle_s
        self._slots: set[Slot] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def admit(self, sock: socket.socket, client: str) -> Slot | None:
        """Return a slot for a new connection (evicting a waiting one when full), or None."""
        with self._lock:
            pending = sum(1 for s in self._slots if s.client == client and not s.authenticated)
            if pending >= self.per_client:
                log.warning("%s holds %d unauthenticated connections; closing a new one",
                            client, pending)  # fmt: skip
                return None
            if len(self._slots) >= self.max_connections:
                victim = self._victim()
                if victim is None:
                    log.warning("connection limit reached; closing connection from %s", client)
                    return None
                log.info("connection limit reached; closing a waiting one from %s", victim.client)
                self._close(victim)
            slot = Slot(client, sock.dup(), deadline=time.monotonic() + self.handshake_s)
            self._slots.add(slot)
            return slot

    def waiting(self, slot: Slot) -> bool:
        """Start the wait for a request head; False when the connection was closed meanwhile."""
        with self._lock:
            if slot.closed:
                return False
            slot.phase = IDLE if slot.authenticated else HEAD
            slot.since = time.monotonic()
            slot.deadline = slot.since + (self.idle_s if slot.authenticated else self.head_s)
            return True

    def busy(self, slot: Slot) -> bool:
        """Mark a complete head being served; False when it came after the connection's close."""
        with self._lock:
            if slot.closed:
                return False
            slot.phase, slot.deadline = BUSY, None
            return True

    def authenticated(self, slot: Slot) -> None:
        """Record that the connection carried a valid token (it no longer counts as pending)."""
        with self._lock:
            slot.authenticated = True

    def release(self, slot: Slot) -> None:
        """Forget a connection its thread has finished with."""
        with self._lock:
            self._slots.discard(slot)
            slot.closed = True
            slot.watch.close()

    def reap_forever(self) -> None:
        """Close connections whose phase outlived its deadline, until stop() (a thread's body)."""
        while not self._stop.wait(_REAP_EVERY_S):
            now = time.monotonic()
            with self._lock:
                for slot in [s for s in self._slots if s.deadline and s.deadline < now]:
                    log.info("closing connection from %s: no %s in time", slot.client,
                             "TLS handshake" if slot.phase == HANDSHAKE else "request")  # fmt: skip
                    self._close(slot)

    def stop(self) -> None:
        """End reap_forever."""
        self._stop.set()

    def _victim(self) -> Slot | None:
        waiting = [s for s in self._slots if s.phase != BUSY]
        return min(waiting, key=lambda s: (s.authenticated, s.since), default=None)

    def _close(self, slot: Slot) -> None:
        self._slots.discard(slot)
        slot.closed = True
        with contextlib.suppress(OSError):
            slot.watch.shutdown(socket.SHUT_RDWR)
