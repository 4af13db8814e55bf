"""End-to-end throughput of trivial operations: queued -> succeeded in Postgres, 2 workers.

Two `spectr worker` processes (huey consumers on Redis, SPECTR_WORKER_THREADS threads each)
drain N `noop` operations. The rows are written as `create_operation` writes them (state
queued, in one transaction so the producer is not what is measured) and their ids go on the
queue through the portal's own task, `execute_operation`. Every figure comes from the rows:
first `started_at` to last `finished_at`, and the wall time until all N are `succeeded`.

Baseline in the same run: plain huey with the same consumer settings in 2 processes, draining N
tasks that only count themselves in Redis (one pipelined INCR), so the ratio shows what the
operation bookkeeping (claim, lease, finish in Postgres) costs on top of the queue.

Usage: .venv/bin/python bench/operations.py [--count 5000] [--threads 4] [--timeout 120]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis
from _common import (
    BIN,
    REDIS_BASE_URL,
    WHAT_IF,
    CpuMeter,
    apply_what_ifs,
    background,
    describe_trace,
    idle_machine_ceiling,
    print_table,
    round_trip_trace,
    spectr,
    spectr_env,
    temporary_database,
    temporary_queue,
    verdict,
)
from huey import RedisHuey
from huey.consumer import Consumer

TARGET = 500.0
WORKER_PROCESSES = 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="operations (and tasks) to drain")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after, per phase")
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        choices=sorted(WHAT_IF),
        help="diagnosis only: change one thing outside the portal's code and measure again",
    )
    parser.add_argument("--huey-consumer", metavar="QUEUE", help=argparse.SUPPRESS)
    return parser.parse_args()


# ---------------------------------------------------------------- baseline: plain huey


def baseline_huey(queue_name: str) -> RedisHuey:
    """A huey with one task that only counts itself; the same code runs producer and consumers."""
    huey = RedisHuey(queue_name, url=REDIS_BASE_URL, results=False)
    counter = redis.Redis.from_url(REDIS_BASE_URL)

    @huey.task(name="bench.count")
    def count(_: int) -> None:
        pipe = counter.pipeline(transaction=False)
        pipe.incr(f"{queue_name}:done")
        pipe.set(f"{queue_name}:last", repr(time.time()))
        pipe.execute()

    huey.bench_count = count  # type: ignore[attr-defined]
    return huey


def run_baseline_consumer(queue_name: str, threads: int) -> None:
    """Consume the baseline queue like `spectr worker` consumes Spectr's (same settings)."""
    consumer = Consumer(
        baseline_huey(queue_name),
        workers=threads,
        worker_type="thread",
        periodic=False,
        check_worker_health=True,
        scheduler_interval=1,
        max_delay=1.0,
    )
    consumer.run()


def measure_baseline(args: argparse.Namespace) -> dict[str, object]:
    """Drain `count` plain huey tasks with 2 consumer processes; return the figures."""
    with temporary_queue() as queue_name:
        huey = baseline_huey(queue_name)
        client = redis.Redis.from_url(REDIS_BASE_URL)
        command = [sys.executable, __file__, "--huey-consumer", queue_name]
        command += ["--threads", str(args.threads)]
        with workers(command, os.environ.copy(), "bench-huey-consumer") as pids:
            _drain_baseline_warmup(huey, client, queue_name, args.timeout)
            client.delete(f"{queue_name}:done")
            meter = CpuMeter(pids)
            began = time.time()
            for index in range(args.count):
                huey.bench_count(index)  # type: ignore[attr-defined]
            enqueued = time.time()
            done = _wait_for(lambda: int(client.get(f"{queue_name}:done") or 0), args, began)
            cores = meter.cores()
            last = float(client.get(f"{queue_name}:last") or began)
        client.close()
    return _figures("plain huey task", args.count, done, began, enqueued, began, last, cores)


def _drain_baseline_warmup(huey: RedisHuey, client: redis.Redis, name: str, timeout: float) -> None:
    for index in range(50):
        huey.bench_count(index)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while int(client.get(f"{name}:done") or 0) < 50:
        if time.monotonic() > deadline:
            raise SystemExit("the baseline consumers did not start")
        time.sleep(0.05)


# ---------------------------------------------------------------- Spectr operations


def measure_operations(args: argparse.Namespace) -> dict[str, object]:
    """Drain `count` noop operations with 2 `spectr worker` processes; return the figures."""
    with (
        temporary_database() as database_url,
        temporary_queue() as queue_name,
        tempfile.TemporaryDirectory(prefix="spectr-bench-") as instance,
    ):
        env = spectr_env(
            Path(instance), database_url, queue_name, SPECTR_WORKER_THREADS=str(args.threads)
        )
        apply_what_ifs(args.what_if, database_url, env)
        spectr(["init"], env)
        os.environ.update(env)  # this process writes rows and enqueues with the same config
        from portal.app import create_app

        app = create_app()
        with app.app_context():
            trace = _explain_worker_path()
        with (
            app.app_context(),
            workers([str(BIN / "spectr"), "worker"], env, "bench-worker") as pids,
        ):
            _insert_and_enqueue(50, "warm-up")
            _wait_until_succeeded("warm-up", 50, args.timeout)  # workers are up and warm
            meter = CpuMeter(pids)
            began = time.time()
            ids = _insert_and_enqueue(args.count, "bench")
            enqueued = time.time()
            done = _wait_for(lambda: _succeeded("bench"), args, began)
            cores = meter.cores()
            first_start, last_finish, states = _row_figures(ids)
            _dispose_engine()
    figures = _figures(
        "Spectr noop operation", args.count, done, began, enqueued, first_start, last_finish, cores
    )
    figures["states"] = states
    figures["trace"] = trace
    return figures


def _explain_worker_path(repeat: int = 200) -> str:
    """Round trips and CPU of one operation run by the worker code, here, one at a time."""
    from portal.core.operations import runner
    from portal.extensions import db

    ids = _insert_rows(repeat + 1, "explain")
    with round_trip_trace(db.engine) as seen:
        runner.run_operation(ids[0])
    began = time.process_time()
    for op_id in ids[1:]:
        runner.run_operation(op_id)
    cpu_ms = (time.process_time() - began) / repeat * 1000
    return f"{cpu_ms:.2f} ms CPU; {describe_trace(seen)}"


def _insert_and_enqueue(count: int, target: str) -> list[str]:
    """Write `count` queued noop rows in one transaction, then put each id on the queue."""
    from portal.core.operations.tasks import execute_operation

    ids = _insert_rows(count, target)
    for op_id in ids:
        execute_operation(op_id)
    return ids


def _insert_rows(count: int, target: str) -> list[str]:
    """Write `count` noop rows as create_operation leaves them once enqueued (state queued)."""
    from portal.core.operations.models import QUEUED, Operation
    from portal.core.timeutil import utcnow
    from portal.extensions import db

    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    db.session.add_all(
        Operation(
            id=op_id, kind="noop", target=target, params={}, state=QUEUED, max_attempts=3,
            created_at=now, queued_at=now,
        )
        for op_id in ids
    )  # fmt: skip
    db.session.commit()
    return ids


def _succeeded(target: str) -> int:
    """How many operations with this target have succeeded."""
    from sqlalchemy import func, select

    from portal.core.operations.models import SUCCEEDED, Operation
    from portal.extensions import db

    total = db.session.scalar(
        select(func.count()).where(Operation.target == target, Operation.state == SUCCEEDED)
    )
    db.session.rollback()  # the next poll must see what the workers committed since
    return int(total or 0)


def _wait_until_succeeded(target: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _succeeded(target) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the spectr workers did not run the warm-up operations")
        time.sleep(0.05)


def _row_figures(ids: list[str]) -> tuple[float, float, dict[str, int]]:
    """First start, last finish (epoch seconds) and the count per state of the measured rows."""
    from sqlalchemy import func, select

    from portal.core.operations.models import Operation
    from portal.extensions import db

    chunks = [ids[i : i + 1000] for i in range(0, len(ids), 1000)]
    starts, finishes = [], []
    states: dict[str, int] = {}
    for chunk in chunks:
        row = db.session.execute(
            select(func.min(Operation.started_at), func.max(Operation.finished_at)).where(
                Operation.id.in_(chunk)
            )
        ).one()
        starts.append(row[0])
        finishes.append(row[1])
        for state, number in db.session.execute(
            select(Operation.state, func.count()).where(Operation.id.in_(chunk)).group_by("state")
        ):
            states[state] = states.get(state, 0) + number
    first = min(s for s in starts if s is not None)
    last = max(f for f in finishes if f is not None)
    return _epoch(first), _epoch(last), states


def _epoch(naive_utc: object) -> float:
    from datetime import UTC

    return naive_utc.replace(tzinfo=UTC).timestamp()  # type: ignore[attr-defined]


def _dispose_engine() -> None:
    from portal.extensions import db

    db.session.remove()
    db.engine.dispose()  # the database is dropped next; leave no connection open to it


# ---------------------------------------------------------------- shared


@contextlib.contextmanager
def workers(command: list[str], env: dict[str, str], name: str) -> Iterator[list[int]]:
    """Start WORKER_PROCESSES copies of `command`; yield their pids; stop them at the end."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(background(command, env, f"{name}-{i}"))
            for i in range(WORKER_PROCESSES)
        ]


def _wait_for(done_count: object, args: argparse.Namespace, began: float) -> int:
    """Poll `done_count()` until it reaches args.count or the timeout; return the last count."""
    done = 0
    while time.time() - began < args.timeout:
        done = done_count()  # type: ignore[operator]
        if done >= args.count:
            break
        time.sleep(0.05)
    return done


def _figures(
    name: str,
    count: int,
    done: int,
    began: float,
    enqueued: float,
    first_start: float,
    last_finish: float,
    cores: dict[str, float],
) -> dict[str, object]:
    return {
        "name": name,
        "done": done,
        "count": count,
        "enqueue_s": enqueued - began,
        "wall_s": last_finish - began,
        "rate_end_to_end": done / max(last_finish - began, 1e-9),
        "rate_drain": done / max(last_finish - first_start, 1e-9),
        "ceiling": idle_machine_ceiling(done / max(last_finish - first_start, 1e-9), cores),
        "worker_cores": cores["server"],
        "worker_ms": cores["server"]
        / max(done / max(last_finish - first_start, 1e-9), 1e-9)
        * 1000,
        "data_cores": cores["pg+redis"],
        "other_cores": cores["other"],
    }


def report(baseline: dict[str, object], spectr_figures: dict[str, object]) -> None:
    keys = ["done", "enqueue_s", "wall_s", "rate_end_to_end", "rate_drain", "worker_ms", "worker_cores",
            "data_cores", "other_cores"]  # fmt: skip
    print()
    print_table(
        ["what", "done", "enqueue s", "wall s", "per s (wall)", "per s (drain)", "CPU ms/task", "worker cores",
         "pg+redis cores", "other cores"],
        [[f["name"], *(f[k] for k in keys)] for f in (baseline, spectr_figures)],
    )  # fmt: skip
    rate = float(spectr_figures["rate_end_to_end"])  # type: ignore[arg-type]
    ratio = rate / float(baseline["rate_end_to_end"])  # type: ignore[arg-type]
    print()
    print(f"operation states at the end: {spectr_figures['states']}")
    print(
        f"one noop operation in the worker code, run here one at a time: {spectr_figures['trace']}"
    )
    print(f"Spectr operations/s: {rate:,.0f}; plain huey {baseline['rate_end_to_end']:,.0f}/s;"
          f" ratio {ratio:.2f}")  # fmt: skip
    print(f"target >= {TARGET:g} operations/s: {verdict(rate >= TARGET)}")
    print(
        f"estimated operations/s with both cores free of other work: {spectr_figures['ceiling']:,.0f}"
        f" (plain huey {baseline['ceiling']:,.0f})"
    )
    print(
        "(wall: from the first enqueue to the last finish; drain: first start to last finish;"
        " other: the rest of this shared 2-core machine, busy with work that is not this bench)"
    )


def main() -> None:
    args = parse_args()
    if args.huey_consumer:
        run_baseline_consumer(args.huey_consumer, args.threads)
        return
    print(f"{WORKER_PROCESSES} worker processes x {args.threads} threads, {args.count:,} trivial"
          " tasks each, on Postgres + Redis")  # fmt: skip
    baseline = measure_baseline(args)
    spectr_figures = measure_operations(args)
    report(baseline, spectr_figures)


if __name__ == "__main__":
    main()
