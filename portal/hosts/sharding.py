"""Health sweeps shared out between worker processes, through heartbeats in the database.

Sweeps run in rounds on the wall clock (round = floor(time / interval)), so every worker starts
a round at the same moment. At a round's start each worker reads the live workers (heartbeat
fresher than `liveness_s`) sorted by id; worker number i of n probes the hosts whose
id % n == i. While the set of workers holds, no host is probed twice in a round and none is
skipped. A worker that dies stops its heartbeat: the others notice within `liveness_s` and,
in the round where they notice, probe its hosts at once (a catch-up), so its shard is back
under watch within one interval. A worker that joins starts with the next round.

Rounds line up only as well as the workers' clocks do (NTP); a skew makes rounds overlap, it
does not lose hosts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, not_, select, update
from sqlalchemy.exc import IntegrityError

from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import Host, SweepWorker

log = logging.getLogger(__name__)
FORGET_WORKERS_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Shard:
    """The hosts one of `count` workers probes: those whose id leaves `index` modulo `count`."""

    index: int
    count: int

    def covers(self) -> ColumnElement[bool]:
        return (Host.id % self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(worker_id: str, workers: Sequence[str]) -> Shard:
    """`worker_id`'s shard among `workers` (it must be one of them)."""
    ordered = sorted(workers)
    return Shard(ordered.index(worker_id), len(ordered))


def liveness_s(interval: float) -> float:
    """How long a worker counts as alive after its last heartbeat: under half an interval."""
    return max(2.0, min(6.0, interval / 2))


def heartbeat_period_s(interval: float) -> float:
    return liveness_s(interval) / 3


def heartbeat(worker_id: str) -> None:
    """Say that `worker_id` is alive (and forget workers gone for a day)."""
    now = utcnow()
    with db.engine.begin() as conn:
        seen = conn.execute(
            update(SweepWorker).where(SweepWorker.worker_id == worker_id).values(heartbeat_at=now)
        ).rowcount
        conn.execute(
            delete(SweepWorker).where(SweepWorker.heartbeat_at < now - FORGET_WORKERS_AFTER)
        )
    if not seen:
        try:
            with db.engine.begin() as conn:
                conn.execute(
                    insert(SweepWorker).values(
                        worker_id=worker_id, heartbeat_at=now, started_at=now
                    )
                )
        except IntegrityError:  # a second thread of the same worker was first
            pass


def live_workers(interval: float) -> list[str]:
    """Ids of the workers whose heartbeat is fresh, sorted."""
    fresh_since = utcnow() - timedelta(seconds=liveness_s(interval))
    query = select(SweepWorker.worker_id).where(SweepWorker.heartbeat_at >= fresh_since)
    workers = list(db.session.scalars(query.order_by(SweepWorker.worker_id)))
    db.session.rollback()  # no transaction stays open while the sweep runs
    return workers


def record_round(worker_id: str, number: int, shard: Shard, hosts: int, seconds: float) -> None:
    """Note what this worker's last round covered (for operators and the benchmark)."""
    with db.engine.begin() as conn:
        conn.execute(
            update(SweepWorker)
            .where(SweepWorker.worker_id == worker_id)
            .values(
                last_round=number,
                last_sweep_hosts=hosts,
                last_sweep_seconds=seconds,
                last_shard=str(shard),
            )
        )


Sweep = Callable[[ColumnElement[bool]], Any]  # probes the hosts matching a condition


class SweepRounds:
    """This worker's place in the rounds: the round it swept last, and with which workers."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.round: int | None = None
        self.workers: tuple[str, ...] = ()

    def tick(self, interval: float, sweep: Sweep) -> Any:
        """Sweep this worker's shard when a round begins, or a dead worker's hosts; else None."""
        number = math.floor(time.time() / interval)
        workers = live_workers(interval)
        if self.worker_id not in workers:
            heartbeat(self.worker_id)
            workers = sorted([*workers, self.worker_id])
        if self.round is None and len(workers) > 1:
            # The others sweep this round with the workers they know: join at the next one.
            self.round, self.workers = number, tuple(workers)
            return None
        if number != self.round:
            shard = shard_of(self.worker_id, workers)
            started = time.perf_counter()
            report = sweep(shard.covers())
            self.round, self.workers = number, tuple(workers)
            hosts = getattr(report, "hosts", 0)
            record_round(self.worker_id, number, shard, hosts, time.perf_counter() - started)
            return report
        gone = set(self.workers) - set(workers)
        if gone:
            before, now = shard_of(self.worker_id, self.workers), shard_of(self.worker_id, workers)
            log.warning("health sweep: worker(s) %s stopped; probing their hosts now", sorted(gone))
            report = sweep(and_(now.covers(), not_(before.covers())))
            self.workers = tuple(workers)
            return report
        return None
