"""The portal's Prometheus metrics: fleet state read from the database at scrape time, and
HTTP request latency measured around every request.

Database-derived families (operations, hosts, GPUs, applications, events) are computed per
scrape by a collector, so every portal process answers the same figures. Request latency is a
prometheus-client Histogram; under gunicorn set PROMETHEUS_MULTIPROC_DIR (an empty folder
shared by the workers) so a scrape sums all processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy import Float, case, cast, func, inspect, select, text

from portal.core.operations.models import ACTIVE_STATES, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db, queue
from portal.hosts.models import HOST_STATUSES, Host, HostContainer, HostGpu
from portal.monitoring.models import OPEN, Event

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Our own registry: create_app may run many times in one process (tests), metrics must not.
HTTP_REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_LATENCY = Histogram(
    "spectr_http_request_duration_seconds",
    "Portal HTTP request latency by route",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
    registry=HTTP_REGISTRY,
)


def init_request_metrics(app: Flask) -> None:
    """Time every request; label by URL rule, not path, so label values stay bounded."""

    @app.before_request
    def _start_timer() -> None:
        g.monitoring_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("monitoring_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "<unmatched>"
            HTTP_LATENCY.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response


def render_metrics() -> tuple[bytes, str]:
    """Return the exposition text of every portal metric and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_RegistryCollector(HTTP_REGISTRY))
    registry.register(FleetCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _RegistryCollector:
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class FleetCollector:
    """Read operations, queue, hosts, GPUs, containers, applications and events per scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from operation_metrics()
        yield queue_metric()
        yield from host_metrics()
        yield from application_metrics()
        yield from project_metrics()
        yield open_event_metric()


def operation_metrics() -> Iterator[Metric]:
    """Operations by kind and state, retries, and the duration histogram of finished ones."""
    counts = GaugeMetricFamily(
        "spectr_operations", "Operations by kind and state", labels=["kind", "state"]
    )
    rows = db.session.execute(
        select(Operation.kind, Operation.state, func.count()).group_by(
            Operation.kind, Operation.state
        )
    ).all()
    for kind, state, count in rows:
        counts.add_metric([kind, state], count)
    yield counts
    retries = CounterMetricFamily(
        "spectr_operation_retries", "Attempts beyond the first, by kind", labels=["kind"]
    )
    extra = func.sum(case((Operation.attempts > 1, Operation.attempts - 1), else_=0))
    for kind, total in db.session.execute(
        select(Operation.kind, extra).group_by(Operation.kind)
    ).all():
        retries.add_metric([kind], float(total or 0))
    yield retries
    yield _duration_histogram()


def _duration_seconds() -> Any:
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", Operation.finished_at - Operation.started_at)
    return (func.julianday(Operation.finished_at) - func.julianday(Operation.started_at)) * 86400.0


def _duration_histogram() -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "spectr_operation_duration_seconds",
        "Run time of finished operations (started to finished)",
        labels=["kind"],
    )
    for kind, (count, total, cumulative) in sorted(_duration_cache().totals().items()):
        buckets = [
            (floatToGoString(b), c) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
        ]
        family.add_metric([kind], [*buckets, ("+Inf", count)], total)
    return family


def _duration_cache() -> DurationAggregate:
    cache = current_app.extensions.get("spectr_duration_histogram")
    if cache is None:
        cache = current_app.extensions["spectr_duration_histogram"] = DurationAggregate()
    return cache


class DurationAggregate:
    """Bucket counts of finished operations, each row aggregated once per process.

    A finished operation's duration never changes, so rows finished before a watermark (a
    minute ago, past any commit still in flight) are summed once and kept; each scrape only
    reads the rows finished since. Deleting old rows (log retention) does not lower the
    counts, which is what Prometheus expects of a histogram.
    """

    SETTLE = timedelta(seconds=60)

    def __init__(self) -> None:
        self.watermark: datetime | None = None
        self.settled: dict[str, tuple[int, float, list[int]]] = {}
        self.lock = threading.Lock()

    def totals(self) -> dict[str, tuple[int, float, list[int]]]:
        with self.lock:
            settle_until = utcnow() - self.SETTLE
            if self.watermark is None or settle_until > self.watermark:
                _merge(self.settled, _bucket_rows(self.watermark, settle_until))
                self.watermark = settle_until
            totals = dict(self.settled)
            return _merge(totals, _bucket_rows(self.watermark, None))


def _merge(into: dict, more: dict) -> dict:
    for kind, (count, total, buckets) in more.items():
        old_count, old_total, old_buckets = into.get(kind, (0, 0.0, [0] * len(buckets)))
        into[kind] = (
            old_count + count,
            old_total + total,
            [a + b for a, b in zip(old_buckets, buckets, strict=True)],
        )
    return into


def _bucket_rows(since: datetime | None, until: datetime | None) -> dict:
    """Bucket the run time of operations finished in [since, until) in SQL, one row per kind."""
    duration = cast(_duration_seconds(), Float)
    columns = [func.sum(case((duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    query = (
        select(Operation.kind, func.count(), func.coalesce(func.sum(duration), 0.0), *columns)
        .where(Operation.finished_at.is_not(None), Operation.started_at.is_not(None))
        .group_by(Operation.kind)
    )
    if since is not None:
        query = query.where(Operation.finished_at >= since)
    if until is not None:
        query = query.where(Operation.finished_at < until)
    return {
        kind: (int(count), float(total), [int(c or 0) for c in cumulative])
        for kind, count, total, *cumulative in db.session.execute(query).all()
    }


def queue_metric() -> GaugeMetricFamily:
    """Tasks waiting in the huey queue and operations not finished yet."""
    family = GaugeMetricFamily(
        "spectr_queue_depth", "Work waiting, by where it waits", labels=["queue"]
    )
    try:
        family.add_metric(["huey_pending"], queue.pending_count())
        family.add_metric(["huey_scheduled"], queue.scheduled_count())
    except Exception:  # the queue backend being down must not hide the other metrics
        pass
    waiting = db.session.scalar(select(func.count()).where(Operation.state.in_(ACTIVE_STATES[:2])))
    family.add_metric(["operations_waiting"], waiting or 0)
    return family


def host_metrics() -> Iterator[Metric]:
    """Hosts by status, GPU count and memory by model, containers by state."""
    hosts = GaugeMetricFamily("spectr_hosts", "Hosts by status", labels=["status"])
    found = dict(db.session.execute(select(Host.status, func.count()).group_by(Host.status)).all())
    for status in HOST_STATUSES:
        hosts.add_metric([status], found.get(status, 0))
    yield hosts
    gpus = GaugeMetricFamily("spectr_gpus", "GPUs known, by model", labels=["model"])
    total = GaugeMetricFamily(
        "spectr_gpu_memory_total_mib", "GPU memory by model (last facts)", labels=["model"]
    )
    used = GaugeMetricFamily(
        "spectr_gpu_memory_used_mib", "GPU memory in use by model (last facts)", labels=["model"]
    )
    query = select(
        HostGpu.model,
        func.count(),
        func.sum(HostGpu.memory_total_mib),
        func.sum(HostGpu.memory_used_mib),
    ).group_by(HostGpu.model)
    for model, count, memory_total, memory_used in db.session.execute(query).all():
        gpus.add_metric([model], count)
        total.add_metric([model], memory_total or 0)
        used.add_metric([model], memory_used or 0)
    yield from (gpus, total, used)
    containers = GaugeMetricFamily(
        "spectr_host_containers", "Containers seen on hosts, by state", labels=["state"]
    )
    for state, count in db.session.execute(
        select(HostContainer.state, func.count()).group_by(HostContainer.state)
    ).all():
        containers.add_metric([state], count)
    yield containers


def application_metrics() -> Iterator[Metric]:
    """Applications by status, when the applications context has created its table."""
    if not inspect(db.engine).has_table("applications"):
        return
    family = GaugeMetricFamily("spectr_applications", "Applications by status", labels=["status"])
    rows = db.session.execute(text("SELECT status, count(*) FROM applications GROUP BY status"))
    for status, count in rows.all():
        family.add_metric([str(status)], count)
    yield family


def project_metrics() -> Iterator[Metric]:
    """Each project's use of its quotas (GPUs its applications hold, of each model, their
    memory, applications, gateway requests and tokens), and the limits that are set, when the
    projects table exists."""
    if not inspect(db.engine).has_table("projects"):
        return
    from portal.projects.quotas import usage_documents

    families = _project_families()
    for project, usage in usage_documents():
        for quota, (used, limit, _) in PROJECT_GAUGES.items():
            families[used].add_metric([project.name], usage[quota]["used"])
            if usage[quota]["limit"] is not None:
                families[limit].add_metric([project.name], usage[quota]["limit"])
        for model, use in usage["gpus_per_model"].items():
            families["spectr_project_model_gpus"].add_metric([project.name, model], use["used"])
            if use["limit"] is not None:
                families["spectr_project_model_gpu_limit"].add_metric(
                    [project.name, model], use["limit"]
                )
    yield from families.values()


# Usage quota -> (gauge of its use, gauge of its limit, what they count).
PROJECT_GAUGES = {
    "gpus": ("spectr_project_gpus", "spectr_project_gpu_limit", "GPUs its applications hold"),
    "applications": (
        "spectr_project_applications", "spectr_project_application_limit", "applications"
    ),
    "gpu_memory_mib": ("spectr_project_gpu_memory_mib", "spectr_project_gpu_memory_limit_mib",
                       "MiB of memory of the GPUs its applications hold"),
    "gateway_rpm": ("spectr_project_gateway_requests_minute", "spectr_project_gateway_rpm_limit",
                    "gateway requests this UTC minute"),
    "gateway_tokens_per_day": ("spectr_project_gateway_tokens_day",
                               "spectr_project_gateway_tokens_day_limit",
                               "gateway tokens today (UTC)"),
    "gateway_tokens_per_month": ("spectr_project_gateway_tokens_month",
                                 "spectr_project_gateway_tokens_month_limit",
                                 "gateway tokens this month (UTC)"),
}  # fmt: skip


def _project_families() -> dict[str, GaugeMetricFamily]:
    families: dict[str, GaugeMetricFamily] = {}
    for used, limit, what in PROJECT_GAUGES.values():
        families[used] = GaugeMetricFamily(used, f"A project's {what}", labels=["project"])
        families[limit] = GaugeMetricFamily(
            limit, f"A project's quota of {what}", labels=["project"]
        )
    labels = ["project", "model"]
    families["spectr_project_model_gpus"] = GaugeMetricFamily(
        "spectr_project_model_gpus", "GPUs of a model a project's applications hold", labels=labels
    )
    families["spectr_project_model_gpu_limit"] = GaugeMetricFamily(
        "spectr_project_model_gpu_limit", "A project's quota of GPUs of a model", labels=labels
    )
    return families


def open_event_metric() -> GaugeMetricFamily:
    """Open events by kind: the portal's own alerts."""
    family = GaugeMetricFamily("spectr_open_events", "Open events by kind", labels=["kind"])
    for kind, count in db.session.execute(
        select(Event.kind, func.count()).where(Event.state == OPEN).group_by(Event.kind)
    ).all():
        family.add_metric([kind], count)
    return family
