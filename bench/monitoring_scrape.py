"""How much a Prometheus scrape, an SD refresh, a dashboard refresh and an event sweep cost
on a sizeable fleet, against GET /healthz on the same portal in the same run.

    .venv/bin/python bench/monitoring_scrape.py [--hosts 200] [--operations 20000] [--rounds 30]

Embedded default (SQLite in a temporary instance), Flask's test client (no network), so the
figures are the portal's own work per request. Bounded: a few seconds of set-up, `rounds`
requests per endpoint.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade

from portal.app import create_app
from portal.core.timeutil import utcnow
from portal.extensions import db

KINDS = ("app.deploy", "image.pull", "host.bootstrap", "noop", "registry.sync", "app.stop")
STATES = ("succeeded", "succeeded", "succeeded", "failed", "running", "queued")


def seed(hosts: int, operations: int) -> None:
    """Insert hosts with 8 GPUs and 20 containers each, and finished operations."""
    from portal.core.operations.models import Operation
    from portal.hosts.models import Host, HostContainer, HostGpu

    now = utcnow()
    for number in range(hosts):
        host = Host(
            name=f"gpu-{number:04d}", address=f"10.0.{number // 250}.{number % 250}",
            status=("ready", "ready", "ready", "degraded", "unreachable")[number % 5],
            agent_url=f"https://10.0.{number // 250}.{number % 250}:7443",
        )  # fmt: skip
        host.gpus = [
            HostGpu(index=i, model=("H200", "A100")[number % 2], memory_total_mib=81920,
                    memory_used_mib=(number * 977 + i * 131) % 81920)
            for i in range(8)
        ]  # fmt: skip
        host.containers = [
            HostContainer(container_id=f"{number}-{i}", name=f"app-{i}", image="vllm",
                          state="restarting" if (number + i) % 97 == 0 else "running")
            for i in range(20)
        ]  # fmt: skip
        db.session.add(host)
    db.session.flush()
    rows = []
    for number in range(operations):
        started = now - timedelta(seconds=number % 86400)
        state = STATES[number % len(STATES)]
        finished = state in ("succeeded", "failed")
        rows.append({
            "id": str(uuid.uuid4()), "kind": KINDS[number % len(KINDS)], "state": state,
            "attempts": 1 + number % 3, "max_attempts": 3, "progress": 0.0, "params": {},
            "cancel_requested": False, "created_at": started, "started_at": started,
            "finished_at": started + timedelta(seconds=number % 600) if finished else None,
        })  # fmt: skip
    db.session.execute(Operation.__table__.insert(), rows)
    db.session.commit()


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    call()  # warm caches and lazy imports outside the measurement
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--operations", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="spectr-bench-monitoring-") as instance:
        app = create_app({"SPECTR_INSTANCE_PATH": instance, "SPECTR_QUEUE_IMMEDIATE": True,
                          "SPECTR_LOG_LEVEL": "WARNING"})  # fmt: skip
        with app.app_context():
            upgrade()
            from portal.admin import service
            from portal.monitoring.events import detect_events

            user = service.create_user("bench-viewer", "bench-password-123456", "admin")
            _, token = service.create_token(user, "bench", 1)
            started = time.perf_counter()
            seed(args.hosts, args.operations)
            print(f"seeded {args.hosts} hosts ({args.hosts * 8} GPUs, {args.hosts * 20} containers)"
                  f" and {args.operations} operations in {time.perf_counter() - started:.1f} s")  # fmt: skip
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}

            def get(path: str) -> Callable[[], object]:
                def call() -> object:
                    answer = client.get(path, headers=headers)
                    assert answer.status_code == 200, (path, answer.status_code)
                    return answer

                return call

            cases = {
                "GET /healthz (baseline)": get("/healthz"),
                "GET /metrics": get("/metrics"),
                "GET /api/v1/monitoring/targets": get("/api/v1/monitoring/targets"),
                "GET /monitoring/overview": get("/monitoring/overview"),
                "detect_events() sweep": detect_events,
            }
            results = {name: timed(call, args.rounds) for name, call in cases.items()}
    baseline = statistics.median(results["GET /healthz (baseline)"])
    print(f"\n{'case':<34}{'median ms':>11}{'p95 ms':>10}{'x healthz':>11}")
    for name, samples in results.items():
        median = statistics.median(samples)
        p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
        print(f"{name:<34}{median:>11.2f}{p95:>10.2f}{median / baseline:>11.1f}")


if __name__ == "__main__":
    main()
