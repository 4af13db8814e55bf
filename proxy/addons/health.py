"""Active health checks: GET each replica's health path and keep the balancer informed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from proxy.config import HealthCheck, Replica
from proxy.state import ProxyState

logger = logging.getLogger(__name__)

TICK_S = 0.1


class HealthChecks:
    """Probe replicas of pools that declare a health_check, on their own interval."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self._due: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task | None = None
        self._checks: set[asyncio.Task] = set()  # the loop holds tasks weakly; keep them here

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for pool in list(self.state.config.pools.values()):
                if pool.health_check is None:
                    continue
                for replica in pool.replicas:
                    slot = (pool.name, replica.id)
                    if self._due.get(slot, 0.0) <= now:
                        self._due[slot] = now + pool.health_check.interval_s
                        check = asyncio.get_running_loop().create_task(
                            self._check(replica, pool.health_check)
                        )
                        self._checks.add(check)
                        check.add_done_callback(self._checks.discard)

    async def _check(self, replica: Replica, check: HealthCheck) -> None:
        ok = await probe_health(replica, check)
        before = self.state.balancer.state(replica).check_ok
        self.state.balancer.mark_check(replica, ok)
        if before is not ok:
            logger.info("replica %s is %s", replica.id, "healthy" if ok else "unhealthy")


async def probe_health(replica: Replica, check: HealthCheck) -> bool:
    """GET the health path; a 2xx or 3xx answer within the timeout is healthy."""
    context = ssl.create_default_context() if replica.scheme == "https" else None
    try:
        async with asyncio.timeout(check.timeout_s):
            reader, writer = await asyncio.open_connection(replica.host, replica.port, ssl=context)
            try:
                writer.write(
                    f"GET {check.path} HTTP/1.1\r\nHost: {replica.host}:{replica.port}\r\n"
                    "Connection: close\r\nUser-Agent: spectr-proxy-health\r\n\r\n".encode()
                )
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
