"""Periodic jobs at sub-minute intervals, run by a thread in every worker process.

huey's periodic tasks tick once a minute at best and fire again after a quick restart, so
Spectr keeps its own: each job runs at most once per interval across all workers (a Redis
lock when Redis is configured; the embedded default has one process), and every job is
written to be idempotent anyway. A job registered with `every_worker=True` runs in every
worker instead and shares its work out itself (the health sweep).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval: Callable[[Flask], float]
    run: Callable[[], object]
    every_worker: bool = False


JOBS: dict[str, PeriodicJob] = {}


def periodic_job(
    name: str, interval: Callable[[Flask], float], *, every_worker: bool = False
) -> Callable:
    """Register `run` to be called every `interval(app)` seconds inside an app context.

    Without `every_worker`, one worker of the installation runs it per interval.
    """

    def register(run: Callable[[], object]) -> Callable[[], object]:
        JOBS[name] = PeriodicJob(name, interval, run, every_worker)
        return run

    return register


class Ticker(threading.Thread):
    def __init__(self, app: Flask, resolution: float = 0.5) -> None:
        super().__init__(name="spectr-ticker", daemon=True)
        self.app = app
        self.resolution = resolution
        self.stopping = threading.Event()
        self._next_run: dict[str, float] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._redis = _redis_client(app)

    def run(self) -> None:
        while not self.stopping.wait(self.resolution):
            for job in list(JOBS.values()):
                self._maybe_run(job)

    def stop(self) -> None:
        self.stopping.set()

    def _maybe_run(self, job: PeriodicJob) -> None:
        """Start the job in a thread of its own when it is due and not still running.

        A slow job (a health sweep over many hosts) must not hold back the others, such as
        operation recovery.
        """
        now = time.monotonic()
        running = self._threads.get(job.name)
        if now < self._next_run.get(job.name, 0) or (running and running.is_alive()):
            return
        with self.app.app_context():
            try:
                interval = float(job.interval(self.app))
            except Exception:
                log.exception("periodic job %s has no interval", job.name)
                return
        self._next_run[job.name] = now + interval
        thread = threading.Thread(
            target=self._run_job, args=(job, interval), name=f"job-{job.name}", daemon=True
        )
        self._threads[job.name] = thread
        thread.start()

    def _run_job(self, job: PeriodicJob, interval: float) -> None:
        with self.app.app_context():
            try:
                if job.every_worker or self._acquire(job.name, interval):
                    job.run()
            except Exception:
                log.exception("periodic job %s failed", job.name)

    def _acquire(self, name: str, interval: float) -> bool:
        if self._redis is None:
            return True
        # One lock per installation, named like its queue: two Spectrs sharing a Redis (or tests
        # side by side) must not skip each other's jobs; one's own processes share the lock.
        key = f"spectr:ticker:{self.app.config['SPECTR_QUEUE_NAME']}:{name}"
        return bool(self._redis.set(key, "1", nx=True, px=max(int(interval * 900), 100)))


def _redis_client(app: Flask) -> object | None:
    url = app.config.get("SPECTR_REDIS_URL")
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url)
