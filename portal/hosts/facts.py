"""Store what the host_facts module reported: the facts document and one row per GPU."""

from __future__ import annotations

from typing import Any

from portal.hosts.models import Host, HostGpu


def store_facts(host: Host, spectr_host: dict[str, Any]) -> None:
    """Keep the facts of `host` and replace its GPU rows with the ones reported."""
    host.facts = spectr_host
    existing = {gpu.index: gpu for gpu in host.gpus}
    reported = {int(gpu.get("index", i)): gpu for i, gpu in enumerate(spectr_host.get("gpus", []))}
    for index, gpu in existing.items():
        if index not in reported:
            host.gpus.remove(gpu)
    for index, data in reported.items():
        row = existing.get(index) or HostGpu(index=index)
        row.uuid = data.get("uuid")
        row.model = str(data.get("name") or "unknown")
        row.memory_total_mib = int(data.get("memory_total_mb") or 0)
        row.memory_used_mib = int(data.get("memory_used_mb") or 0)
        row.driver_version = data.get("driver_version")
        row.cuda_version = data.get("cuda_version")
        if index not in existing:
            host.gpus.append(row)


def summary(facts: dict[str, Any]) -> dict[str, Any]:
    """The few facts a list shows: OS, kernel, CPU, memory, Docker."""
    return {
        "os": (facts.get("os") or {}).get("pretty_name"),
        "kernel": (facts.get("kernel") or {}).get("release"),
        "cpu_model": (facts.get("cpu") or {}).get("model"),
        "cpu_count": (facts.get("cpu") or {}).get("logical"),
        "memory_mib": (facts.get("memory") or {}).get("total_mb"),
        "docker_version": (facts.get("docker") or {}).get("engine_version"),
    }
