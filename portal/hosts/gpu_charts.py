"""GPU charts of a host page: utilisation, memory and temperature of each GPU over a window,
drawn as SVG on the server (no chart script to load; the page's live stream swaps them in).

The time axis ends at the newest sample, not at "now", so a chart changes only when a sweep
adds a sample, and the stream sends it only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import Host, HostGpuSample

WINDOWS_MINUTES = (15, 60, 360, 1440)
WIDTH, HEIGHT = 300.0, 80.0


@dataclass
class Chart:
    title: str
    unit: str
    top: float  # the value at the top edge
    points: str  # SVG polyline points
    now: float | None  # the newest reading
    samples: int


@dataclass
class GpuCharts:
    index: int
    model: str
    charts: list[Chart] = field(default_factory=list)
    start: datetime | None = None  # the left edge: the window's start, or the first sample
    end: datetime | None = None  # the right edge: the newest sample


def window_minutes(asked: Any) -> int:
    """The window a request asks for, when it is one the page offers; else an hour."""
    return int(asked) if str(asked).isdigit() and int(asked) in WINDOWS_MINUTES else 60


def newest_sample_at(host_id: int) -> datetime | None:
    """When the host's newest sample was taken (the index on host_id, at answers it)."""
    query = select(func.max(HostGpuSample.at)).where(HostGpuSample.host_id == host_id)
    return db.session.scalar(query)


Row = tuple[datetime, Any]  # (when, reading)


def host_gpu_charts(host: Host, minutes: int) -> list[GpuCharts]:
    """One set of charts per GPU with samples in the last `minutes` (before the newest one)."""
    end = newest_sample_at(host.id) or utcnow()
    window_start = end - timedelta(minutes=minutes)
    models = {gpu.index: gpu.model for gpu in host.gpus}
    drawn = []
    for index, rows in _readings(host.id, window_start).items():
        # Less history than the window: the chart starts at the first sample, not at a blank.
        first = rows[0][0]
        start = max(window_start, first) if first < end else window_start
        charts = _charts(rows, start, end)
        drawn.append(GpuCharts(index, models.get(index, f"GPU {index}"), charts, start, end))
    return drawn


def _readings(host_id: int, since: datetime) -> dict[int, list[tuple[Any, ...]]]:
    """Plain rows (at, utilisation, memory used, memory total, temperature) by GPU: a day of
    eight GPUs is 23,000 rows, too many to load as objects for one page."""
    columns = (HostGpuSample.gpu_index, HostGpuSample.at, HostGpuSample.utilization_percent,
               HostGpuSample.memory_used_mib, HostGpuSample.memory_total_mib,
               HostGpuSample.temperature_celsius)  # fmt: skip
    query = (
        select(*columns)
        .where(HostGpuSample.host_id == host_id, HostGpuSample.at >= since)
        .order_by(HostGpuSample.gpu_index, HostGpuSample.at)
    )
    by_gpu: dict[int, list[tuple[Any, ...]]] = {}
    for index, *rest in db.session.execute(query):
        by_gpu.setdefault(index, []).append(tuple(rest))
    return by_gpu


def _charts(rows: list[tuple[Any, ...]], start: datetime, end: datetime) -> list[Chart]:
    total = max((row[3] or 0 for row in rows), default=0)
    hottest = max((row[4] or 0 for row in rows), default=0)
    series = {name: [(row[0], row[column]) for row in rows if row[column] is not None]
              for name, column in (("util", 1), ("memory", 2), ("heat", 4))}  # fmt: skip
    return [
        _chart("Utilisation", "%", 100.0, series["util"], start, end),
        _chart("Memory", "MiB", float(total or 1), series["memory"], start, end),
        # 100 °C covers every GPU's normal range; a hotter reading raises the top.
        _chart("Temperature", "°C", max(100.0, hottest), series["heat"], start, end),
    ]


def _chart(title: str, unit: str, top: float, readings: list[Row], start: datetime,
           end: datetime) -> Chart:  # fmt: skip
    """A polyline of the readings' averages per horizontal pixel: at most WIDTH points."""
    span = max((end - start).total_seconds(), 1.0)
    buckets: dict[int, list[float]] = {}
    for at, value in readings:
        buckets.setdefault(int(WIDTH * (at - start).total_seconds() / span), []).append(value)
    points = []
    for x, values in sorted(buckets.items()):
        y = HEIGHT - HEIGHT * min(sum(values) / len(values), top) / top
        points.append(f"{min(float(x), WIDTH):.0f},{y:.1f}")
    now = float(readings[-1][1]) if readings else None
    return Chart(title, unit, top, " ".join(points), now, len(readings))
