"""GPU readings over time: taken at each health sweep, kept a while, drawn on the host page.

The agents send their GPUs' readings with the health answer the sweep already asks for (one
nvidia-smi call, the query the agent's /metrics uses); the Spectr node, which has no agent,
runs the same nvidia-smi query here. A sweep stores one sample per GPU, brings the GPU's
memory in use up to date (the overview and the gpu.memory_high event read it), and deletes
samples older than SPECTR_GPU_HISTORY_HOURS.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, insert, select, update

from portal.extensions import db
from portal.hosts.models import HostGpu, HostGpuSample

# The agent's query (agent/facts.py GPU_TELEMETRY_QUERY): the same columns in the same order.
TELEMETRY_QUERY = (
    "index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw"
)
READINGS = ("utilization_percent", "memory_used_mib", "memory_total_mib",
            "temperature_celsius", "power_watts")  # fmt: skip


def _number(cell: Any) -> float | None:
    try:
        return float(str(cell).strip())
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_telemetry_csv(output: str) -> list[dict[str, Any]]:
    """`nvidia-smi --query-gpu=TELEMETRY_QUERY --format=csv,noheader,nounits` as readings."""
    readings = []
    for line in output.strip().splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 8 or not cells[0].isdigit():
            continue
        index, _, _, total, used, utilization, temperature, power = cells
        readings.append(_reading(int(index), utilization, used, total, temperature, power))
    return readings


def _reading(index: int, utilization: Any, used: Any, total: Any, temperature: Any,
             power: Any) -> dict[str, Any]:  # fmt: skip
    used_mib, total_mib = _number(used), _number(total)
    return {
        "gpu_index": index,
        "utilization_percent": _number(utilization),
        "memory_used_mib": int(used_mib) if used_mib is not None else None,
        "memory_total_mib": int(total_mib) if total_mib is not None else None,
        "temperature_celsius": _number(temperature),
        "power_watts": _number(power),
    }


def local_readings() -> list[dict[str, Any]]:
    """The Spectr node's GPUs now; [] without nvidia-smi or when it fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        done = subprocess.run(
            [binary, f"--query-gpu={TELEMETRY_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_telemetry_csv(done.stdout)


def agent_readings(health: dict[str, Any]) -> list[dict[str, Any]]:
    """The readings an agent's health answer carries (older agents send none)."""
    readings = []
    for gpu in health.get("gpus") or []:
        if not isinstance(gpu, dict) or not isinstance(gpu.get("index"), int):
            continue
        readings.append(_reading(gpu["index"], gpu.get("utilization_percent"),
                                 gpu.get("memory_used_mb"), gpu.get("memory_total_mb"),
                                 gpu.get("temperature_celsius"), gpu.get("power_watts")))  # fmt: skip
    return readings


def store_samples(by_host: Iterable[tuple[int, list[dict[str, Any]]]], now: datetime) -> int:
    """Write one sample per GPU read this sweep and delete the expired ones; return how many."""
    rows = [{"host_id": host_id, "at": now, **reading}
            for host_id, readings in by_host for reading in readings]  # fmt: skip
    if rows:
        db.session.execute(insert(HostGpuSample), rows)
        for row in rows:
            if row["memory_used_mib"] is not None:
                db.session.execute(
                    update(HostGpu)
                    .where(HostGpu.host_id == row["host_id"], HostGpu.index == row["gpu_index"])
                    .values(memory_used_mib=row["memory_used_mib"]),
                    execution_options={"synchronize_session": False},
                )
    hours = float(current_app.config["SPECTR_GPU_HISTORY_HOURS"])
    db.session.execute(delete(HostGpuSample).where(HostGpuSample.at < now - timedelta(hours=hours)))
    return len(rows)


def history(host_id: int, since: datetime) -> dict[int, list[HostGpuSample]]:
    """The host's samples since `since`, by GPU index, oldest first."""
    query = (
        select(HostGpuSample)
        .where(HostGpuSample.host_id == host_id, HostGpuSample.at >= since)
        .order_by(HostGpuSample.at)
    )
    series: dict[int, list[HostGpuSample]] = {}
    for sample in db.session.scalars(query):
        series.setdefault(sample.gpu_index, []).append(sample)
    return dict(sorted(series.items()))
