"""Light HTTPS agents on 127.82.0.x in a thread of the test: they answer health checks like the
real agent (a token each, no containers) and record when each one was asked."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections import defaultdict
from pathlib import Path

_HEALTH = json.dumps(
    {"status": "ok", "agent_version": "sim", "engine": {"reachable": True, "version": "27"}}
).encode()
_EMPTY = b"[]"


def _answer(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class SimulatedAgents:
    """`count` agents, one per address 127.82.0.1 and up, on one port; `probes` by address."""

    def __init__(self, count: int, certificate: tuple[str, str], folder: Path) -> None:
        self.addresses = [f"127.82.0.{n + 1}" for n in range(count)]
        self.probes: dict[str, list[float]] = defaultdict(list)
        cert, key = folder / "agents.crt", folder / "agents.key"
        cert.write_text(certificate[0])
        key.write_text(certificate[1])
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(str(cert), str(key))
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @staticmethod
    def token(address: str) -> str:
        return f"token-{address}"

    def start(self) -> SimulatedAgents:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(30)
        return self

    async def _listen(self) -> None:
        first = await asyncio.start_server(
            self._handle_for(self.addresses[0]), self.addresses[0], 0, ssl=self._tls
        )
        self.port = first.sockets[0].getsockname()[1]
        self._servers.append(first)
        for address in self.addresses[1:]:
            server = await asyncio.start_server(
                self._handle_for(address), address, self.port, ssl=self._tls
            )
            self._servers.append(server)

    def _handle_for(self, address: str):  # type: ignore[no-untyped-def]
        expected = f"authorization: bearer {self.token(address)}".encode()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    if expected not in head.lower():
                        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    elif head.startswith(b"GET /v1/health"):
                        self.probes[address].append(time.time())
                        writer.write(_answer(_HEALTH))
                    else:
                        writer.write(_answer(_EMPTY))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
                writer.close()

        return handle

    def probes_between(self, start: float, end: float) -> dict[str, int]:
        """How many health checks each agent got in [start, end) (wall clock)."""
        return {a: sum(start <= t < end for t in list(self.probes[a])) for a in self.addresses}

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
