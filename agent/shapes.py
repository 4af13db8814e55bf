"""The agent's own JSON shapes for Docker objects (its API contract, not Docker's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _iso(timestamp: int | float | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _ports_from_list(ports: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "container_port": port.get("PrivatePort"),
            "protocol": port.get("Type", "tcp"),
            "host_ip": port.get("IP"),
            "host_port": port.get("PublicPort"),
        }
        for port in ports or []
    ]


def _ports_from_inspect(ports: dict[str, Any] | None) -> list[dict[str, Any]]:
    result = []
    for key, bindings in (ports or {}).items():
        number, _, protocol = key.partition("/")
        for binding in bindings or [{}]:
            host_port = binding.get("HostPort")
            result.append(
                {
                    "container_port": int(number),
                    "protocol": protocol or "tcp",
                    "host_ip": binding.get("HostIp"),
                    "host_port": int(host_port) if host_port else None,
                }
            )
    return result


def _mounts(mounts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "type": mount.get("Type") or "bind",
            "name": mount.get("Name") or None,
            "source": mount.get("Source") or None,
            "destination": mount.get("Destination") or "",
            "read_only": mount.get("RW") is False,
        }
        for mount in mounts or []
    ]


def _networks(settings: dict[str, Any] | None) -> list[dict[str, Any]]:
    networks = (settings or {}).get("Networks") or {}
    return [
        {
            "name": name,
            "network_id": (attachment or {}).get("NetworkID") or None,
            "ip_address": (attachment or {}).get("IPAddress") or None,
        }
        for name, attachment in sorted(networks.items())
    ]


def container_from_list(entry: dict[str, Any]) -> dict[str, Any]:
    """Shape one entry of GET /containers/json."""
    names = entry.get("Names") or [""]
    return {
        "id": entry["Id"],
        "name": names[0].lstrip("/"),
        "image": entry.get("Image"),
        "image_id": entry.get("ImageID"),
        "state": entry.get("State"),
        "status": entry.get("Status"),
        "labels": entry.get("Labels") or {},
        "created": _iso(entry.get("Created")),
        "ports": _ports_from_list(entry.get("Ports")),
        "mounts": _mounts(entry.get("Mounts")),
        "networks": _networks(entry.get("NetworkSettings")),
    }


def container_from_inspect(document: dict[str, Any]) -> dict[str, Any]:
    """Shape GET /containers/{id}/json; the engine's document stays under "raw"."""
    state = document.get("State") or {}
    config = document.get("Config") or {}
    network = document.get("NetworkSettings") or {}
    return {
        "id": document["Id"],
        "name": document.get("Name", "").lstrip("/"),
        "image": config.get("Image"),
        "image_id": document.get("Image"),
        "state": state.get("Status"),
        "status": state.get("Status"),
        "labels": config.get("Labels") or {},
        "created": document.get("Created"),
        "ports": _ports_from_inspect(network.get("Ports")),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "restart_count": document.get("RestartCount", 0),
        "health": (state.get("Health") or {}).get("Status"),
        "tty": bool(config.get("Tty")),
        "mounts": _mounts(document.get("Mounts")),
        "networks": _networks(network),
        "command": config.get("Cmd"),
        "entrypoint": config.get("Entrypoint"),
        "env": config.get("Env") or [],
        "restart_policy": ((document.get("HostConfig") or {}).get("RestartPolicy") or {}).get(
            "Name"
        )
        or None,
        "raw": document,
    }


def image_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """Shape an entry of GET /images/json or the document of GET /images/{name}/json."""
    created = entry.get("Created")
    return {
        "id": entry["Id"],
        "tags": [tag for tag in entry.get("RepoTags") or [] if tag != "<none>:<none>"],
        "digests": [d for d in entry.get("RepoDigests") or [] if d != "<none>@<none>"],
        "size": entry.get("Size"),
        "created": _iso(created) if isinstance(created, int | float) else created,
        "labels": entry.get("Labels") or (entry.get("Config") or {}).get("Labels") or {},
    }


def volume_summary(entry: dict[str, Any], size: int | None = None) -> dict[str, Any]:
    """Shape a volume of GET /volumes; size comes from GET /system/df (None: not measured)."""
    return {
        "name": entry["Name"],
        "driver": entry.get("Driver") or "local",
        "mountpoint": entry.get("Mountpoint") or None,
        "created": entry.get("CreatedAt") or None,
        "scope": entry.get("Scope") or None,
        "labels": entry.get("Labels") or {},
        "size": size,
    }


def network_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """Shape a network of GET /networks."""
    ipam = (entry.get("IPAM") or {}).get("Config") or []
    return {
        "id": entry["Id"],
        "name": entry.get("Name") or "",
        "driver": entry.get("Driver") or "",
        "scope": entry.get("Scope") or None,
        "created": entry.get("Created") or None,
        "internal": bool(entry.get("Internal")),
        "labels": entry.get("Labels") or {},
        "subnets": [item["Subnet"] for item in ipam if item.get("Subnet")],
    }


def stats_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """Reduce one stats sample to CPU percent, memory and I/O counters; keep the sample as raw."""
    cpu, precpu = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        precpu.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - precpu.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or 1
    cpu_percent = cpu_delta / system_delta * online * 100 if system_delta > 0 else 0.0
    memory = stats.get("memory_stats") or {}
    networks = stats.get("networks") or {}
    return {
        "cpu_percent": round(cpu_percent, 2),
        "memory_usage_bytes": memory.get("usage"),
        "memory_limit_bytes": memory.get("limit"),
        "network_rx_bytes": sum(n.get("rx_bytes", 0) for n in networks.values()),
        "network_tx_bytes": sum(n.get("tx_bytes", 0) for n in networks.values()),
        "pids": (stats.get("pids_stats") or {}).get("current"),
        "raw": stats,
    }
