"""Light HTTPS agent simulators: many agents per process, each on its own 127.x.y.z address.

A simulated agent answers /v1/health and /v1/containers like the real agent (Content-Length
bodies, keep-alive) and checks a per-agent bearer token. One asyncio process serves a few
thousand of them. Certificates come from the portal's own CA, one for every CERT_ADDRESSES
agents: a real agent's names one address, and one certificate naming a thousand cost the
portal 1.5 ms per handshake just to decode it. Only loopback addresses are used (127.0.0.0/8).
"""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HEALTH = {"status": "ok", "agent_version": "sim", "engine": {"reachable": True, "version": "20.10"}}
FIRST_ADDRESS = (127, 80)  # 127.80.0.1 and up: clear of 127.0.0.1, where Postgres and Redis live
CERT_ADDRESSES = 10


def containers(count: int) -> list[dict]:
    """What a simulated agent lists: `count` running containers, the first one healthy."""
    return [
        {"id": f"{i:02d}" * 32, "name": f"app-{i}", "image": "vllm/vllm-openai:v0.6",
         "image_id": "sha256:1", "state": "running",
         "status": "Up 3 hours (healthy)" if i == 0 else "Up 3 hours",
         "labels": {"spectr.app": f"app-{i}"}, "created": "2026-11-28T10:00:00Z", "ports": []}
        for i in range(count)
    ]  # fmt: skip


def agent_address(index: int) -> str:
    """The loopback address of simulated agent number `index` (0-based)."""
    second = FIRST_ADDRESS[1] + index // 62500
    third, fourth = divmod(index % 62500, 250)
    return f"127.{second}.{third}.{fourth + 1}"


def agent_token(address: str) -> str:
    return f"token-{address}"


def free_agent_port(addresses: Sequence[str]) -> int:
    """A port free on the first and last simulated address (nothing else binds 127.80/12)."""
    for port in range(17443, 17600):
        try:
            for address in (addresses[0], addresses[-1]):
                with socket.socket() as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return port
    raise SystemExit("no free port for the simulated agents on 127.80.x.y")


def _response(body: object) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


def run_simulator(
    groups: Sequence[tuple[Sequence[tuple[str, int]], str, str]],
    ready: multiprocessing.Queue,
    container_count: int = 10,
    hang: bool = False,
) -> None:
    """Serve agents: groups of (endpoints, cert file, key file); with hang, never answer."""
    health, listing = _response(HEALTH), _response(containers(container_count))
    unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str
    ) -> None:
        expected = f"authorization: bearer {agent_token(address)}".encode()
        if hang:  # a host whose agent accepts connections but is stuck
            await asyncio.sleep(3600)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if expected not in head.lower():
                    writer.write(unauthorized)
                elif head.startswith(b"GET /v1/health"):
                    writer.write(health)
                else:
                    writer.write(listing)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            writer.close()

    async def main() -> None:
        servers = []
        for endpoints, cert, key in groups:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            for address, port in endpoints:
                serve = functools.partial(handle, address=address)
                servers.append(
                    await asyncio.start_server(serve, address, port, ssl=context, backlog=128)
                )
        ready.put(len(servers))
        await asyncio.Event().wait()

    asyncio.run(main())


@dataclass
class SimulatorFleet:
    """Simulator processes and the endpoints each one serves."""

    processes: list[multiprocessing.Process]
    endpoints: list[list[tuple[str, int]]]

    def kill(self, index: int | None = None) -> None:
        """Kill one simulator process (its agents refuse connections), or all of them."""
        for number, process in enumerate(self.processes):
            if index is None or number == index:
                process.kill()
                process.join()


def start_simulators(
    endpoints: Sequence[tuple[str, int]],
    processes: int,
    certificate_for: object,
    folder: Path,
    container_count: int = 10,
    hang: bool = False,
) -> SimulatorFleet:
    """Start `processes` simulators sharing `endpoints`; `certificate_for(addresses)` -> PEMs."""
    ready: multiprocessing.Queue = multiprocessing.Queue()
    per = -(-len(endpoints) // processes)
    groups = [list(endpoints[i : i + per]) for i in range(0, len(endpoints), per)]
    started = []
    for number, group in enumerate(groups):
        with_certificates = []
        for first in range(0, len(group), CERT_ADDRESSES):
            endpoints = group[first : first + CERT_ADDRESSES]
            cert_pem, key_pem = certificate_for(sorted({address for address, _ in endpoints}))  # type: ignore[operator]
            cert, key = folder / f"sim-{number}-{first}.crt", folder / f"sim-{number}-{first}.key"
            cert.write_text(cert_pem)
            key.write_text(key_pem)
            key.chmod(0o600)
            with_certificates.append((endpoints, str(cert), str(key)))
        process = multiprocessing.Process(
            target=run_simulator,
            args=(with_certificates, ready, container_count, hang),
            daemon=True,
        )
        process.start()
        started.append(process)
    for _ in started:
        ready.get(timeout=300)
    return SimulatorFleet(started, groups)
