"""Health sweep over 1,000 simulated agents on 127.x.y.z: probe time and database write time.

    .venv/bin/python bench/hosts_health.py [--agents 1000] [--processes 8] [--database URL]

Each simulated agent (bench/agent_simulators.py) is a light HTTPS responder on an address of
its own (asyncio, many per process) with a certificate from the portal's own CA and a per-agent
bearer token; it answers /v1/health and /v1/containers (3 containers) like the real agent. The
portal side is the real code: `portal.hosts.health.check_all_hosts` on its event loop and the
real database writes.

Figures: a cold sweep (TLS handshakes, 3,000 container rows inserted), warm sweeps (kept
connections, nothing changed), a sweep with one simulator process down (its agents refuse
connections), and, as the baseline measured in the same run, a warm sweep probing one host
at a time. Target: a sweep of 1,000 hosts in 5 s or less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_simulators import agent_address, agent_token, free_agent_port, start_simulators

TARGET_S = 5.0
HUNG_AGENTS = 20
CONTAINERS = 3


def certificates(names: list[str]) -> tuple[str, str]:
    from portal.core.pki import issue_server_certificate

    return issue_server_certificate("simulated-agent", names)


def start_fleet(first: int, count: int, processes: int, instance: Path, hang: bool = False):  # type: ignore[no-untyped-def]
    """Simulated agents number first..first+count-1, each on its own 127.x.y.z address."""
    addresses = [agent_address(i) for i in range(first, first + count)]
    port = free_agent_port(addresses)
    endpoints = [(address, port) for address in addresses]
    return start_simulators(endpoints, processes, certificates, instance, CONTAINERS, hang)


def make_hosts(endpoints: list[tuple[str, int]]) -> None:
    from portal.core.timeutil import utcnow
    from portal.extensions import db
    from portal.hosts.models import Host

    now = utcnow()
    db.session.add_all(
        Host(name=f"sim-{address}", address=address, ssh_password="x", auth_method="password",
             status="ready", bootstrapped_at=now, agent_port=port,
             agent_url=f"https://{address}:{port}", agent_token=agent_token(address), labels={},
             facts={})
        for address, port in endpoints
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
    from portal.extensions import db

    instance = Path(tempfile.mkdtemp(prefix="spectr-bench-health-"))
    database = args.database or f"sqlite:///{instance / 'spectr.db'}"
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance), "SPECTR_DATABASE_URL": database,
                      "SPECTR_QUEUE_IMMEDIATE": True, "SPECTR_LOG_LEVEL": "WARNING"})  # fmt: skip
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        fleet = start_fleet(0, args.agents, args.processes, instance)
        fleets = [fleet]
        try:
            make_hosts([endpoint for group in fleet.endpoints for endpoint in group])
            print(
                f"{args.agents} simulated agents in {args.processes} processes; database {database.split(':')[0]}"
            )
            cold = sweep("cold sweep (TLS handshakes, inserts)")
            warm = [sweep(f"warm sweep {i + 1}") for i in range(3)]
            baseline = sweep("baseline: warm, one probe at a time", parallel=1)
            fleet.kill(0)
            sweep(f"{len(fleet.endpoints[0])} agents down (1st miss)")
            sweep(f"{len(fleet.endpoints[0])} agents down (2nd miss)")
            hung = start_fleet(args.agents, HUNG_AGENTS, 1, instance, hang=True)
            fleets.append(hung)
            make_hosts(hung.endpoints[0])
            stuck = sweep(f"+{HUNG_AGENTS} stuck agents, timeout 1 s", timeout_s=1)
            stuck_serial = sweep("baseline: the same, one at a time", parallel=1, timeout_s=1)
        finally:
            for each in fleets:
                each.kill()
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
