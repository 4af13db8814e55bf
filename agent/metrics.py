"""Prometheus metrics of the host, its containers, its GPUs and the agent itself."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent import cgroups
from agent.docker_api import DockerAPI, DockerError
from agent.facts import MIB, disk_facts, gpu_telemetry, memory_facts, read_text

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_MAX_CONTAINERS = 500  # bounds scrape time on crowded hosts
_API_STATS_BUDGET_S = 5.0  # when cgroups are not readable, stop asking the API after this


def _host_cpu() -> Metric:
    metric = CounterMetricFamily(
        "spectr_host_cpu_seconds", "Host CPU time by mode", labels=["mode"]
    )
    tick = 100.0  # USER_HZ on Linux
    with open("/proc/stat", encoding="utf-8") as handle:
        fields = handle.readline().split()[1:]
    for mode, value in zip(_CPU_MODES, fields, strict=False):
        metric.add_metric([mode], int(value) / tick)
    return metric


def _host_memory_and_disk() -> Iterator[Metric]:
    memory = GaugeMetricFamily("spectr_host_memory_bytes", "Host memory", labels=["kind"])
    for kind, value in memory_facts(read_text("/proc/meminfo")).items():
        memory.add_metric([kind.removesuffix("_mb")], value * MIB)
    yield memory
    disk = GaugeMetricFamily("spectr_host_disk_bytes", "Filesystem space", labels=["mount", "kind"])
    for entry in disk_facts(read_text("/proc/mounts")):
        disk.add_metric([entry["mount"], "total"], entry["size_mb"] * MIB)
        disk.add_metric([entry["mount"], "free"], entry["free_mb"] * MIB)
    if shutil.which("nvidia-smi"):
        yield from _gpus()
    yield disk


def _gpus() -> Iterator[Metric]:
    labels = ["index", "uuid", "name"]
    families = {
        "memory_total_mb": (GaugeMetricFamily("spectr_gpu_memory_total_bytes", "GPU memory", labels=labels), MIB),
        "memory_used_mb": (GaugeMetricFamily("spectr_gpu_memory_used_bytes", "GPU memory in use", labels=labels), MIB),
        "utilization_percent": (GaugeMetricFamily("spectr_gpu_utilization_ratio", "GPU busy time, 0 to 1", labels=labels), 0.01),
        "temperature_celsius": (GaugeMetricFamily("spectr_gpu_temperature_celsius", "GPU core temperature", labels=labels), 1),
        "power_watts": (GaugeMetricFamily("spectr_gpu_power_watts", "GPU power draw", labels=labels), 1),
    }  # fmt: skip
    for gpu in gpu_telemetry():
        key = [str(gpu["index"]), gpu["uuid"], gpu["name"]]
        for field, (family, scale) in families.items():
            if gpu[field] is not None:  # a GPU that does not report a reading has no sample
                family.add_metric(key, gpu[field] * scale)
    for family, _ in families.values():
        yield family


class DockerCollector:
    """Read container states and per-container CPU/memory at scrape time."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker

    def describe(self) -> list[Metric]:
        """Declare nothing up front, so registering does not query the engine."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield host, container and GPU metrics."""
        yield _host_cpu()
        yield from _host_memory_and_disk()
        up = GaugeMetricFamily("spectr_engine_up", "Docker engine reachable")
        try:
            containers = self.docker.request("GET", "/containers/json", {"all": 1}, timeout=5)
        except DockerError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._containers(containers)

    def _containers(self, containers: list[dict]) -> Iterator[Metric]:
        states = GaugeMetricFamily("spectr_containers", "Containers by state", labels=["state"])
        counts: dict[str, int] = {}
        for entry in containers:
            counts[entry["State"]] = counts.get(entry["State"], 0) + 1
        for state, count in counts.items():
            states.add_metric([state], count)
        yield states
        labels = ["id", "name"]
        cpu = CounterMetricFamily("spectr_container_cpu_seconds", "Container CPU", labels=labels)
        memory = GaugeMetricFamily(
            "spectr_container_memory_bytes", "Container memory", labels=labels
        )
        running = [entry for entry in containers if entry["State"] == "running"]
        deadline = time.monotonic() + _API_STATS_BUDGET_S
        for entry in running[:_MAX_CONTAINERS]:
            key = [entry["Id"][:12], (entry.get("Names") or ["/"])[0].lstrip("/")]
            usage = self._usage(entry["Id"], deadline)
            if usage is not None:
                cpu.add_metric(key, usage[0])
                memory.add_metric(key, usage[1])
        yield cpu
        yield memory

    def _usage(self, container_id: str, deadline: float) -> tuple[float, int] | None:
        """Read cgroup files; fall back to the (slow) stats API while the time budget lasts."""
        seconds, used = cgroups.cpu_seconds(container_id), cgroups.memory_bytes(container_id)
        if seconds is not None and used is not None:
            return seconds, used
        if time.monotonic() > deadline:
            return None
        try:
            stats = self.docker.request(
                "GET", f"/containers/{container_id}/stats", {"stream": 0, "one-shot": 1}, timeout=5
            )
        except DockerError:
            return None  # the container went away between list and stats
        total = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)
        return total / 1e9, (stats.get("memory_stats") or {}).get("usage", 0)


class AgentMetrics:
    """A registry of its own (no import-time global state) exposed as text."""

    def __init__(self, docker: DockerAPI) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(DockerCollector(docker))

    def render(self) -> bytes:
        """Return the exposition text."""
        return generate_latest(self.registry)
