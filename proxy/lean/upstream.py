"""Kept-alive connections to replicas, shared by all clients of the lean path."""

from __future__ import annotations

import asyncio
import ssl
import time

from proxy.lean.wire import Wire

# An idle connection older than this is closed rather than reused: servers drop idle
# connections on their own clock (uvicorn, under vLLM and SGLang, after 5 s), and a request
# sent just as they do fails.
IDLE_S = 4.0
MAX_IDLE_PER_REPLICA = 64
CONNECT_TIMEOUT_S = 2.0

Address = tuple[str, str, int]  # scheme, host, port


class Upstream(Wire):
    """A connection to one replica."""

    def __init__(self, address: Address) -> None:
        super().__init__()
        self.address = address
        self.connected_at = time.time()
        self.reused = False  # it carried a request before this one
        self.idle_since = 0.0


class UpstreamPool:
    """Open, lend and take back connections to replicas (most recently used first)."""

    def __init__(self, insecure: bool = False) -> None:
        self._idle: dict[Address, list[Upstream]] = {}
        self._tls = ssl.create_default_context()
        if insecure:
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE

    def idle(self, address: Address) -> Upstream | None:
        """Return a kept-alive connection to the address that is still good, if any."""
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            # Bytes or an end arriving while idle mean the server gave up on the connection.
            if (
                not conn.closed
                and not conn.eof
                and not conn.buffer
                and now - conn.idle_since < IDLE_S
            ):
                conn.reused = True
                return conn
            conn.close()
        return None

    async def connect(self, address: Address) -> Upstream:
        """Open a new connection; OSError or TimeoutError when the replica cannot be reached."""
        scheme, host, port = address
        loop = asyncio.get_running_loop()
        tls = self._tls if scheme == "https" else None
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, conn = await loop.create_connection(
                lambda: Upstream(address),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls else None,
            )
        return conn

    def give_back(self, conn: Upstream) -> None:
        """Keep a connection whose last answer was read to its end, for the next request."""
        idle = self._idle.setdefault(conn.address, [])
        if conn.closed or len(idle) >= MAX_IDLE_PER_REPLICA:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conn.on_lost = None
        idle.append(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
