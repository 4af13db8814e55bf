"""Health sweep over 1,000 simulated agents on 127.0.0.1: probe time and database write time.

    .venv/bin/python bench/hosts_health.py [--agents 1000] [--processes 8] [--database URL]

Each simulated agent is a light HTTPS responder (asyncio, many listeners per process) with a
certificate from the portal's own CA and a per-agent bearer token; it answers /v1/health and
/v1/containers (3 containers) like the real agent. The portal side is the real code:
`portal.hosts.health.check_all_hosts` with its thread pool and the real database writes.

Figures: a cold sweep (TLS handshakes, 3,000 container rows inserted), warm sweeps (kept
connections, nothing changed), a sweep with one simulator process down (its agents refuse
connections), and, as the baseline measured in the same run, a warm sweep probing one host
at a time. Target: a sweep of 1,000 hosts in 5 s or less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 5.0
HUNG_AGENTS = 20
CONTAINERS = [
    {"id": f"c{i}" * 8, "name": f"app-{i}", "image": "vllm/vllm-openai:v0.6", "image_id": "sha256:1",
     "state": "running", "status": "Up 3 hours (healthy)" if i == 0 else "Up 3 hours",
     "labels": {"spectr.app": f"app-{i}"}, "created": "2026-11-28T10:00:00Z", "ports": []}
    for i in range(3)
]  # fmt: skip
HEALTH = {"status": "ok", "agent_version": "sim", "engine": {"reachable": True, "version": "20.10"}}


def _response(body: object) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


def run_simulator(
    count: int, cert: str, key: str, ports_out: multiprocessing.Queue, hang: bool = False
) -> None:
    """Serve `count` agents on free ports (or, with hang, agents that never answer)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    health, containers = _response(HEALTH), _response(CONTAINERS)
    unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        expected = f"authorization: bearer token-{port}".encode()
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
                    writer.write(containers)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    async def main() -> None:
        ports = []
        for _ in range(count):
            server = await asyncio.start_server(
                lambda r, w: None, "127.0.0.1", 0, ssl=context, backlog=64
            )
            port = server.sockets[0].getsockname()[1]
            server.close()
            await server.wait_closed()
            real = await asyncio.start_server(
                lambda r, w, p=port: handle(r, w, p), "127.0.0.1", port, ssl=context, backlog=64
            )
            ports.append(port)
            del real
        ports_out.put(ports)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_simulators(total: int, processes: int, cert: str, key: str):  # type: ignore[no-untyped-def]
    queue: multiprocessing.Queue = multiprocessing.Queue()
    per = -(-total // processes)
    workers, ports = [], []
    for index in range(processes):
        count = min(per, total - index * per)
        worker = multiprocessing.Process(
            target=run_simulator, args=(count, cert, key, queue), daemon=True
        )
        worker.start()
        workers.append(worker)
    for _ in workers:
        ports.append(queue.get(timeout=60))
    return workers, ports


def start_hung_agents(count: int, instance: Path):  # type: ignore[no-untyped-def]
    queue: multiprocessing.Queue = multiprocessing.Queue()
    args = (count, str(instance / "agent.crt"), str(instance / "agent.key"), queue, True)
    worker = multiprocessing.Process(target=run_simulator, args=args, daemon=True)
    worker.start()
    return worker, queue.get(timeout=60)


def make_hosts(ports: list[int]) -> None:
    from portal.core.timeutil import utcnow
    from portal.extensions import db
    from portal.hosts.models import Host

    now = utcnow()
    db.session.add_all(
        Host(name=f"sim-{port}", address="127.0.0.1", ssh_password="x", auth_method="password",
             status="ready", bootstrapped_at=now, agent_port=port,
             agent_url=f"https://127.0.0.1:{port}", agent_token=f"token-{port}", labels={}, facts={})
        for port in ports
    )  # fmt: skip
    db.session.commit()


def sweep(label: str, parallel: int | None = None, timeout_s: float = 5) -> dict[str, float]:
    from portal.hosts import health

    saved = health.MAX_PARALLEL_PROBES
    if parallel is not None:
        health.MAX_PARALLEL_PROBES = parallel
    try:
        started = time.perf_counter()
        report = health.check_all_hosts(timeout_s=timeout_s)
        total = time.perf_counter() - started
    finally:
        health.MAX_PARALLEL_PROBES = saved
    print(
        f"{label:<38} hosts {report.hosts:>5}  answered {report.answered:>5}  "
        f"probe {report.probe_seconds:6.2f} s  write {report.write_seconds:6.2f} s  "
        f"total {total:6.2f} s  transitions {report.transitions}"
    )
    return {"total": total, "probe": report.probe_seconds, "write": report.write_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite file)")
    args = parser.parse_args()

    from flask_migrate import upgrade

    from portal.app import create_app
    from portal.core.pki import issue_server_certificate
    from portal.extensions import db

    instance = Path(tempfile.mkdtemp(prefix="spectr-bench-health-"))
    database = args.database or f"sqlite:///{instance / 'spectr.db'}"
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance), "SPECTR_DATABASE_URL": database,
                      "SPECTR_QUEUE_IMMEDIATE": True, "SPECTR_LOG_LEVEL": "WARNING"})  # fmt: skip
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        cert_pem, key_pem = issue_server_certificate("simulated-agent", ["127.0.0.1"])
        (instance / "agent.crt").write_text(cert_pem)
        (instance / "agent.key").write_text(key_pem)
        os.chmod(instance / "agent.key", 0o600)
        workers, port_groups = start_simulators(
            args.agents, args.processes, str(instance / "agent.crt"), str(instance / "agent.key")
        )
        try:
            make_hosts([port for group in port_groups for port in group])
            print(
                f"{args.agents} simulated agents in {args.processes} processes; database {database.split(':')[0]}"
            )
            cold = sweep("cold sweep (TLS handshakes, inserts)")
            warm = [sweep(f"warm sweep {i + 1}") for i in range(3)]
            baseline = sweep("baseline: warm, one probe at a time", parallel=1)
            workers[0].kill()
            workers[0].join()
            sweep(f"{len(port_groups[0])} agents down (1st miss)")
            sweep(f"{len(port_groups[0])} agents down (2nd miss)")
            hung = start_hung_agents(HUNG_AGENTS, instance)
            workers.append(hung[0])
            make_hosts(hung[1])
            stuck = sweep(f"+{HUNG_AGENTS} stuck agents, timeout 1 s", timeout_s=1)
            stuck_serial = sweep("baseline: the same, one at a time", parallel=1, timeout_s=1)
        finally:
            for worker in workers:
                worker.kill()
        warm_median = statistics.median(w["total"] for w in warm)
        print()
        print(f"cold sweep {cold['total']:.2f} s, warm sweep median {warm_median:.2f} s "
              f"(write {statistics.median(w['write'] for w in warm):.2f} s); target <= {TARGET_S:.0f} s: "
              f"{'met' if max(cold['total'], warm_median) <= TARGET_S else 'NOT met'}")  # fmt: skip
        print(f"ratio warm sweep / one-at-a-time baseline: {warm_median / baseline['total']:.2f}")
        print(
            f"with {HUNG_AGENTS} stuck agents: {stuck['total']:.2f} s vs one at a time "
            f"{stuck_serial['total']:.2f} s (ratio {stuck['total'] / stuck_serial['total']:.2f})"
        )
        db.session.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
