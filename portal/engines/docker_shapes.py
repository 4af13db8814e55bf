"""Build the contract's value types from Docker Engine API documents (LocalDockerEngine).

The agent shapes the same documents on its side; the two must agree, which the contract
suite in tests/engines checks against both engines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Any

from portal.engines.models import (
    ContainerInfo,
    ContainerStats,
    GpuRequest,
    ImageInfo,
    MountInfo,
    NetworkAttachment,
    NetworkInfo,
    PortBinding,
    VolumeInfo,
)

MIB = 1024 * 1024


def _iso(timestamp: Any) -> str | None:
    if isinstance(timestamp, int | float) and timestamp:
        return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
    return timestamp or None


def _mounts(mounts: list[dict[str, Any]] | None) -> list[MountInfo]:
    return [
        MountInfo(
            type=mount.get("Type") or "bind",
            destination=mount.get("Destination") or "",
            source=mount.get("Source") or None,
            name=mount.get("Name") or None,
            read_only=mount.get("RW") is False,
        )
        for mount in mounts or []
    ]


def _networks(settings: dict[str, Any] | None) -> list[NetworkAttachment]:
    networks = (settings or {}).get("Networks") or {}
    return [
        NetworkAttachment(
            name,
            (attachment or {}).get("NetworkID") or None,
            (attachment or {}).get("IPAddress") or None,
        )
        for name, attachment in sorted(networks.items())
    ]


def container_from_list(entry: dict[str, Any]) -> ContainerInfo:
    """Shape one entry of GET /containers/json."""
    ports = [
        PortBinding(p["PrivatePort"], p.get("Type", "tcp"), p.get("PublicPort"), p.get("IP", ""))
        for p in entry.get("Ports") or []
    ]
    return ContainerInfo(
        id=entry["Id"],
        name=(entry.get("Names") or [""])[0].lstrip("/"),
        image=entry.get("Image"),
        image_id=entry.get("ImageID"),
        state=entry.get("State"),
        status=entry.get("Status"),
        labels=entry.get("Labels") or {},
        created=_iso(entry.get("Created")),
        ports=ports,
        mounts=_mounts(entry.get("Mounts")),
        networks=_networks(entry.get("NetworkSettings")),
    )


def _inspect_ports(ports: dict[str, Any] | None) -> list[PortBinding]:
    result = []
    for key, bindings in (ports or {}).items():
        number, _, protocol = key.partition("/")
        for binding in bindings or [{}]:
            host_port = binding.get("HostPort")
            result.append(
                PortBinding(
                    int(number),
                    protocol or "tcp",
                    int(host_port) if host_port else None,
                    binding.get("HostIp") or "",
                )
            )
    return result


def container_from_inspect(document: dict[str, Any]) -> ContainerInfo:
    """Shape GET /containers/{id}/json."""
    state, config = document.get("State") or {}, document.get("Config") or {}
    return ContainerInfo(
        id=document["Id"],
        name=document.get("Name", "").lstrip("/"),
        image=config.get("Image"),
        image_id=document.get("Image"),
        state=state.get("Status"),
        status=state.get("Status"),
        labels=config.get("Labels") or {},
        created=document.get("Created"),
        ports=_inspect_ports((document.get("NetworkSettings") or {}).get("Ports")),
        exit_code=state.get("ExitCode"),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        restart_count=document.get("RestartCount", 0),
        health=(state.get("Health") or {}).get("Status"),
        tty=bool(config.get("Tty")),
        mounts=_mounts(document.get("Mounts")),
        networks=_networks(document.get("NetworkSettings")),
        command=config.get("Cmd"),
        entrypoint=config.get("Entrypoint"),
        env=config.get("Env") or [],
        restart_policy=((document.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name")
        or None,
        gpus=gpu_request_from_inspect(document),
    )


def gpu_request_from_inspect(document: dict[str, Any]) -> GpuRequest | None:
    """The GPUs an inspected container asks for: its device request (`--gpus`) or, under the
    nvidia runtime, its NVIDIA_VISIBLE_DEVICES (the way before device requests)."""
    host_config = document.get("HostConfig") or {}
    for request in host_config.get("DeviceRequests") or []:
        capabilities = {c for group in request.get("Capabilities") or [] for c in group}
        if "gpu" in capabilities or request.get("Driver") == "nvidia":
            ids = request.get("DeviceIDs")
            count = -1 if ids else int(request.get("Count") or 0)
            return GpuRequest(count, list(ids) if ids else None, request.get("Driver") or "nvidia")
    if host_config.get("Runtime") != "nvidia":
        return None
    env = (document.get("Config") or {}).get("Env") or []
    visible = dict(item.partition("=")[::2] for item in env).get("NVIDIA_VISIBLE_DEVICES", "")
    if visible == "all":
        return GpuRequest()
    if visible and visible not in ("none", "void"):
        return GpuRequest(device_ids=visible.split(","))
    return None


def image_from_document(entry: dict[str, Any]) -> ImageInfo:
    """Shape an entry of GET /images/json or GET /images/{name}/json."""
    return ImageInfo(
        id=entry["Id"],
        tags=[t for t in entry.get("RepoTags") or [] if t != "<none>:<none>"],
        digests=[d for d in entry.get("RepoDigests") or [] if d != "<none>@<none>"],
        size=entry.get("Size"),
        created=_iso(entry.get("Created")),
        labels=entry.get("Labels") or (entry.get("Config") or {}).get("Labels") or {},
    )


def volume_from_document(entry: dict[str, Any], size: int | None = None) -> VolumeInfo:
    """Shape a volume of GET /volumes; its size comes from GET /system/df."""
    return VolumeInfo(
        name=entry["Name"],
        driver=entry.get("Driver") or "local",
        mountpoint=entry.get("Mountpoint") or None,
        created=entry.get("CreatedAt") or None,
        scope=entry.get("Scope") or None,
        labels=entry.get("Labels") or {},
        size=size,
    )


def volume_sizes(usage: dict[str, Any]) -> dict[str, int]:
    """Volume sizes from GET /system/df, leaving out the ones the engine did not measure (-1)."""
    sizes = {}
    for volume in usage.get("Volumes") or []:
        size = (volume.get("UsageData") or {}).get("Size", -1)
        if size >= 0:
            sizes[volume["Name"]] = size
    return sizes


def network_from_document(entry: dict[str, Any]) -> NetworkInfo:
    """Shape a network of GET /networks."""
    ipam = (entry.get("IPAM") or {}).get("Config") or []
    return NetworkInfo(
        id=entry["Id"],
        name=entry.get("Name") or "",
        driver=entry.get("Driver") or "",
        scope=entry.get("Scope") or None,
        created=entry.get("Created") or None,
        internal=bool(entry.get("Internal")),
        labels=entry.get("Labels") or {},
        subnets=[item["Subnet"] for item in ipam if item.get("Subnet")],
    )


def stats_from_sample(stats: dict[str, Any]) -> ContainerStats:
    """Reduce one stats sample to CPU percent, memory and network counters."""
    cpu, precpu = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        precpu.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - precpu.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or 1
    percent = cpu_delta / system_delta * online * 100 if system_delta > 0 else 0.0
    memory = stats.get("memory_stats") or {}
    networks = (stats.get("networks") or {}).values()
    return ContainerStats(
        round(percent, 2),
        memory.get("usage"),
        memory.get("limit"),
        (stats.get("pids_stats") or {}).get("current"),
        sum(n.get("rx_bytes", 0) for n in networks),
        sum(n.get("tx_bytes", 0) for n in networks),
    )


def local_gpus() -> list[dict[str, Any]]:
    """Return this node's NVIDIA GPUs in host_facts' fields, [] without nvidia-smi."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    query = "--query-gpu=index,uuid,name,memory.total,memory.used,driver_version"
    try:
        result = subprocess.run(
            [binary, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        banner = subprocess.run([binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    cuda = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", banner)
    gpus = []
    for line in result.stdout.strip().splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) == 6:
            numbers = [int(c) if c.isdigit() else None for c in (cells[0], cells[3], cells[4])]
            gpus.append(
                {
                    "index": numbers[0],
                    "uuid": cells[1],
                    "name": cells[2],
                    "memory_total_mb": numbers[1],
                    "memory_used_mb": numbers[2],
                    "driver_version": cells[5],
                    "cuda_version": cuda.group(1) if cuda else None,
                }
            )
    return gpus


def local_facts(info: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
    """Return this node's facts in host_facts' shape, as its engine reports them.

    The engine, not this process, is asked: the portal may run in a container whose own
    /proc and /etc describe the container rather than the node.
    """
    root = info.get("DockerRootDir") or "/"
    try:
        usage = shutil.disk_usage(root)
        disks = [
            {
                "mount": root,
                "size_mb": usage.total // MIB,
                "free_mb": usage.free // MIB,
                "device": None,
                "fstype": None,
            }
        ]
    except OSError:
        disks = []
    return {
        "hostname": info.get("Name"),
        "os": {
            "id": info.get("OSType"),
            "name": info.get("OperatingSystem"),
            "version_id": info.get("OSVersion", ""),
            "pretty_name": info.get("OperatingSystem"),
            "codename": "",
        },
        "kernel": {"release": info.get("KernelVersion"), "architecture": info.get("Architecture")},
        "cpu": {"model": "", "sockets": None, "logical": info.get("NCPU")},
        "memory": {
            "total_mb": (info.get("MemTotal") or 0) // MIB,
            "available_mb": None,
            "swap_total_mb": None,
        },
        "disks": disks,
        "docker": {
            "engine_version": version.get("Version"),
            "compose_version": None,
            "reachable": True,
            "api_version": version.get("ApiVersion"),
            "storage_driver": info.get("Driver"),
            "containers": info.get("Containers"),
            "images": info.get("Images"),
        },
        "gpus": local_gpus(),
    }
