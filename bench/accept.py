"""Accept rate and latency of POST /api/v1/operations (noop) under gunicorn, Postgres and Redis.

Baseline in the same run: GET /healthz (one `SELECT 1`), same server, same clients. Two phases
for each endpoint, 50 concurrent keep-alive clients each:

- saturation: every client sends its next request as soon as the last one answered, so the
  figure is the most the server takes; latency there is queueing (Little's law: 50 clients at
  R requests/s wait ~50/R s each), so p99 <= 30 ms at 50 busy clients would need >1,600/s.
- paced: the 50 clients together send the target rate (300/s) on a fixed schedule; this is
  where the p99 target applies. "p99 sched" counts from the planned send time, so a server or
  client that falls behind cannot hide it (no coordinated omission).

Usage: .venv/bin/python bench/accept.py [--requests 3000] [--seconds 20] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BIN,
    ROOT,
    WHAT_IF,
    CpuMeter,
    RawHttp,
    apply_what_ifs,
    background,
    describe_trace,
    free_port,
    http_request,
    idle_machine_ceiling,
    init_instance,
    percentile,
    print_table,
    round_trip_trace,
    spectr_env,
    temporary_database,
    temporary_queue,
    verdict,
    wait_for_http,
)

TARGET_P99_MS = 30.0
TARGET_RATE = 300.0


@dataclass
class Phase:
    """What one load phase measured."""

    name: str
    expected_status: int
    latencies_ms: list[float] = field(default_factory=list)
    scheduled_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)

    def record(self, started: float, planned: float, status: int) -> None:
        if status != self.expected_status:
            self.record_failure(f"HTTP {status}")
            return
        now = time.perf_counter()
        self.latencies_ms.append((now - started) * 1000)
        self.scheduled_ms.append((now - planned) * 1000)

    def record_failure(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else 0.0

    def row(self) -> list[object]:
        server_ms = self.cores["server"] / self.rate * 1000 if self.rate else float("nan")
        return [
            self.name,
            len(self.latencies_ms),
            sum(self.errors.values()),
            self.rate,
            percentile(self.latencies_ms, 0.5),
            percentile(self.latencies_ms, 0.99),
            percentile(self.scheduled_ms, 0.99),
            server_ms,
            *self.cores.values(),
        ]


async def _send(conn: RawHttp, request: bytes, phase: Phase, planned: float) -> None:
    started = time.perf_counter()
    try:
        status = await conn.request(request)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        phase.record_failure(type(exc).__name__)
        await conn.reconnect()
        return
    phase.record(started, planned, status)


async def saturate(conns: list[RawHttp], request: bytes, phase: Phase, args: Namespace) -> None:
    """Closed loop: each client sends again as soon as it has its answer."""
    remaining = args.requests
    deadline = time.perf_counter() + args.seconds

    async def one_client(conn: RawHttp) -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            await _send(conn, request, phase, time.perf_counter())

    await asyncio.gather(*(one_client(conn) for conn in conns))


async def paced(conns: list[RawHttp], request: bytes, phase: Phase, args: Namespace) -> None:
    """Open loop: request i is due at start + i / rate; a free client takes the next one due.

    A server that falls far behind would stretch the phase without end: requests still unsent
    at twice the planned duration are counted as errors ("not sent: server behind") instead.
    """
    total = int(args.rate * args.paced_seconds)
    start = time.perf_counter() + 0.05
    give_up = start + 2 * args.paced_seconds
    next_index = 0

    async def one_client(conn: RawHttp) -> None:
        nonlocal next_index
        while next_index < total and time.perf_counter() < give_up:
            planned = start + next_index / args.rate
            next_index += 1
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await _send(conn, request, phase, planned)

    await asyncio.gather(*(one_client(conn) for conn in conns))
    for _ in range(total - next_index):
        phase.record_failure("not sent: server behind")


async def measure(port: int, token: str, args: Namespace, server_pids: list[int]) -> list[Phase]:
    """Warm up, then run saturation and paced phases for healthz and noop accepts."""
    # A load balancer's probe carries no credentials; the accepts carry a bearer token.
    healthz = http_request("GET", "/healthz", {})
    accept = http_request(
        "POST",
        "/api/v1/operations",
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        b'{"kind": "noop"}',
    )
    conns = [RawHttp("127.0.0.1", port) for _ in range(args.clients)]
    warm = Namespace(**{**vars(args), "requests": 300, "seconds": 10})
    for request, status in ((healthz, 200), (accept, 202)):
        await saturate(conns, request, Phase("warm-up", status), warm)
    phases = []
    for label, runner in (("saturation", saturate), (f"paced {args.rate:g}/s", paced)):
        for name, request, status in (("GET /healthz", healthz, 200), ("POST noop", accept, 202)):
            phase = Phase(f"{name}, {label}", status)
            meter = CpuMeter(server_pids)
            began = time.perf_counter()
            await runner(conns, request, phase, args)
            phase.wall_s = time.perf_counter() - began
            phase.cores = meter.cores()
            phases.append(phase)
    for conn in conns:
        conn.close()
    return phases


class Namespace(argparse.Namespace):
    requests: int
    seconds: float
    rate: float
    paced_seconds: float
    clients: int
    workers: int
    threads: int
    what_if: list[str]


def parse_args() -> Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="cap per saturation phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="cap per saturation phase")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="paced phase, requests/s")
    parser.add_argument("--paced-seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        choices=sorted(WHAT_IF),
        help="diagnosis only: change one thing outside the portal's code and measure again",
    )
    return parser.parse_args(namespace=Namespace())


def report(phases: list[Phase], args: Namespace) -> None:
    print()
    print_table(
        [
            "phase",
            "ok",
            "errors",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99 sched",
            "srv CPU ms/req",
            *(f"{who} cores" for who in ("client", "server", "pg+redis", "other")),
        ],
        [phase.row() for phase in phases],
    )
    for phase in phases:
        if phase.errors:
            print(f"  errors in '{phase.name}': {phase.errors}")
    health_sat, noop_sat, health_paced, noop_paced = phases
    print()
    print(
        f"accepts/s at saturation: {noop_sat.rate:,.0f}  (healthz baseline {health_sat.rate:,.0f};"
        f" ratio {noop_sat.rate / health_sat.rate:.2f})"
    )
    ceiling = idle_machine_ceiling(noop_sat.rate, noop_sat.cores)
    print(
        f"estimated accepts/s with both cores free of other work: {ceiling:,.0f}"
        f" (healthz {idle_machine_ceiling(health_sat.rate, health_sat.cores):,.0f})"
    )
    p99 = percentile(noop_paced.scheduled_ms, 0.99)
    p99_health = percentile(health_paced.scheduled_ms, 0.99)
    print(
        f"p99 of accepts at {args.rate:g}/s: {p99:.1f} ms  (healthz baseline {p99_health:.1f} ms;"
        f" ratio {p99 / p99_health:.2f})"
    )
    print(
        f"target >= {TARGET_RATE:g} accepts/s: {verdict(noop_sat.rate >= TARGET_RATE)};"
        f" target p99 <= {TARGET_P99_MS:g} ms at {args.rate:g}/s: {verdict(p99 <= TARGET_P99_MS)}"
    )
    print(
        "(latencies in ms; server = gunicorn master + workers; other = the rest of this shared"
        " 2-core machine, busy with work that is not this bench)"
    )


def cpu_shares(send: Callable[[], object], repeat: int, top: int = 12) -> list[tuple[float, str]]:
    """Profile `send` by CPU time; return the biggest cumulative shares of portal functions."""
    profile = cProfile.Profile(time.process_time)
    profile.runcall(lambda: [send() for _ in range(repeat)])
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = max(cum for (_, _, _, cum, _) in stats.values())
    portal = str(ROOT / "portal") + "/"
    rows = [
        (cum / total, f"{path.removeprefix(portal)}:{line} {func}")
        for (path, line, func), (_, _, _, cum, _) in stats.items()
        if path.startswith(portal)
    ]
    return sorted(rows, reverse=True)[:top]


def explain(env: dict[str, str], token: str, repeat: int = 200) -> None:
    """Where an accept's time goes: round trips and CPU of one request, in this process."""
    os.environ.update(env)
    from portal.app import create_app
    from portal.extensions import db

    app = create_app()
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    requests = {
        "GET /healthz": lambda: client.get("/healthz"),
        "POST noop": lambda: client.post("/api/v1/operations", json={"kind": "noop"}, headers=auth),
    }
    print("\nwhere the time goes (one request at a time, in this process, same database):")
    for name, send in requests.items():
        send()  # warm: the token's last-use write and first connections are not per request
        with app.app_context(), round_trip_trace(db.engine) as seen:
            send()
        began = time.process_time()
        for _ in range(repeat):
            send()
        cpu_ms = (time.process_time() - began) / repeat * 1000
        print(f"  {name}: {cpu_ms:.2f} ms CPU; {describe_trace(seen)}")
    print("  POST noop, share of its CPU by portal function (cProfile, cumulative):")
    for share, function in cpu_shares(requests["POST noop"], repeat):
        print(f"    {share:5.1%}  {function}")
    with app.app_context():
        db.engine.dispose()  # the bench database is dropped next


def main() -> None:
    args = parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (
        temporary_database() as database_url,
        temporary_queue() as queue_name,
        tempfile.TemporaryDirectory(prefix="spectr-bench-") as instance,
    ):
        env = spectr_env(Path(instance), database_url, queue_name)
        apply_what_ifs(args.what_if, database_url, env)
        token = init_instance(env)
        gunicorn = [
            str(BIN / "gunicorn"),
            "-k", "gthread",
            "-w", str(args.workers),
            "--threads", str(args.threads),
            "-b", f"127.0.0.1:{port}",
            "portal.app:create_app()",
        ]  # fmt: skip
        with background(gunicorn, env, "bench-accept-gunicorn") as pid:
            wait_for_http(f"{base_url}/healthz")
            print(
                f"gunicorn gthread, {args.workers} workers x {args.threads} threads, "
                f"on Postgres + Redis; {args.clients} keep-alive clients (raw HTTP/1.1, asyncio)"
            )
            phases = asyncio.run(measure(port, token, args, [pid]))
        report(phases, args)
        explain(env, token)


if __name__ == "__main__":
    main()
