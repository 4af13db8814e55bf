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
from portal.hosts.gpu_telemetry import history
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


def newest_sample_id(host_id: int) -> int | None:
    query = select(func.max(HostGpuSample.id)).where(HostGpuSample.host_id == host_id)
    return db.session.scalar(query)


def host_gpu_charts(host: Host, minutes: int) -> list[GpuCharts]:
    """One set of charts per GPU with samples in the last `minutes` (before the newest one)."""
    newest = db.session.scalar(
        select(func.max(HostGpuSample.at)).where(HostGpuSample.host_id == host.id)
    )
    end = newest or utcnow()
    window_start = end - timedelta(minutes=minutes)
    models = {gpu.index: gpu.model for gpu in host.gpus}
    drawn = []
    for index, samples in history(host.id, window_start).items():
        # Less history than the window: the chart starts at the first sample, not at a blank.
        start = max(window_start, samples[0].at) if samples[0].at < end else window_start
        charts = _charts(samples, start, end)
        drawn.append(GpuCharts(index, models.get(index, f"GPU {index}"), charts, start, end))
    return drawn


def _charts(samples: list[HostGpuSample], start: Any, end: Any) -> list[Chart]:
    total = max((s.memory_total_mib or 0 for s in samples), default=0)
    hottest = max((s.temperature_celsius or 0 for s in samples), default=0)
    return [
        _chart("Utilisation", "%", 100.0, samples, "utilization_percent", start, end),
        _chart("Memory", "MiB", float(total or 1), samples, "memory_used_mib", start, end),
        # 100 °C covers every GPU's normal range; a hotter reading raises the top.
        _chart(
            "Temperature", "°C", max(100.0, hottest), samples, "temperature_celsius", start, end
        ),
    ]


def _chart(title: str, unit: str, top: float, samples: list[HostGpuSample], attribute: str,
           start: Any, end: Any) -> Chart:  # fmt: skip
    span = max((end - start).total_seconds(), 1.0)
    points = []
    readings = [(s.at, getattr(s, attribute)) for s in samples if getattr(s, attribute) is not None]
    for at, value in readings:
        x = WIDTH * (at - start).total_seconds() / span
        y = HEIGHT - HEIGHT * min(float(value), top) / top
        points.append(f"{x:.1f},{y:.1f}")
    now = float(readings[-1][1]) if readings else None
    return Chart(title, unit, top, " ".join(points), now, len(readings))
