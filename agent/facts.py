"""Host facts: OS, kernel, CPU, memory, disks, Docker version and NVIDIA GPUs."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from typing import Any

from agent.docker_api import DockerAPI, DockerError

GPU_QUERY = "index,uuid,name,memory.total,memory.used,driver_version"
GPU_FIELDS = ("index", "uuid", "name", "memory_total_mib", "memory_used_mib", "driver_version")
_REAL_FILESYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "vfat", "f2fs"}


def os_release(path: str = "/etc/os-release") -> dict[str, str]:
    """Return ID, VERSION_ID and PRETTY_NAME from os-release."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                values[key] = value.strip('"')
    except OSError:
        pass
    return {
        "id": values.get("ID", ""),
        "version_id": values.get("VERSION_ID", ""),
        "pretty_name": values.get("PRETTY_NAME", platform.system()),
    }


def cpu_facts(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """Return the CPU model, logical count and architecture."""
    model = ""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return {"model": model, "count": os.cpu_count() or 0, "architecture": platform.machine()}


def memory_facts(path: str = "/proc/meminfo") -> dict[str, int]:
    """Return total and available memory in bytes."""
    values: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "total_bytes": values.get("MemTotal", 0),
        "available_bytes": values.get("MemAvailable", 0),
    }


def disk_facts(path: str = "/proc/mounts") -> list[dict[str, Any]]:
    """Return size and free space of each real mounted filesystem, once per device."""
    disks, seen = [], set()
    try:
        with open(path, encoding="utf-8") as handle:
            mounts = [line.split()[:3] for line in handle]
    except OSError:
        return []
    for device, mountpoint, fstype in mounts:
        if fstype not in _REAL_FILESYSTEMS or device in seen:
            continue
        try:
            usage = shutil.disk_usage(mountpoint)
        except OSError:
            continue
        seen.add(device)
        disks.append(
            {
                "device": device,
                "mountpoint": mountpoint,
                "fstype": fstype,
                "total_bytes": usage.total,
                "free_bytes": usage.free,
            }
        )
    return disks


def parse_nvidia_smi_csv(output: str, cuda_version: str | None) -> list[dict[str, Any]]:
    """Parse `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output."""
    gpus = []
    for line in output.strip().splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(GPU_FIELDS):
            continue
        gpu: dict[str, Any] = dict(zip(GPU_FIELDS, cells, strict=True))
        for key in ("index", "memory_total_mib", "memory_used_mib"):
            gpu[key] = int(gpu[key]) if gpu[key].isdigit() else None
        gpu["cuda_version"] = cuda_version
        gpus.append(gpu)
    return gpus


def _cuda_version(binary: str) -> str | None:
    """Read "CUDA Version: X.Y" from nvidia-smi's banner (the query API lacks it)."""
    try:
        banner = subprocess.run([binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    marker = "CUDA Version:"
    if marker not in banner:
        return None
    return banner.split(marker, 1)[1].split()[0].strip("|") or None


def gpu_facts() -> list[dict[str, Any]]:
    """Return NVIDIA GPUs, or [] when nvidia-smi is absent or fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    command = [binary, f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return parse_nvidia_smi_csv(result.stdout, _cuda_version(binary))


def docker_facts(docker: DockerAPI) -> dict[str, Any]:
    """Return the engine's version, API version and storage driver, or why it is unreachable."""
    try:
        version = docker.request("GET", "/version", timeout=5)
        info = docker.request("GET", "/info", timeout=5)
    except DockerError as error:
        return {"reachable": False, "error": error.message}
    return {
        "reachable": True,
        "version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "storage_driver": info.get("Driver"),
        "containers": info.get("Containers"),
        "images": info.get("Images"),
    }


def host_facts(docker: DockerAPI) -> dict[str, Any]:
    """Collect every fact; each part degrades to empty values rather than failing."""
    return {
        "hostname": socket.gethostname(),
        "os": os_release(),
        "kernel": platform.release(),
        "cpu": cpu_facts(),
        "memory": memory_facts(),
        "disks": disk_facts(),
        "docker": docker_facts(docker),
        "gpus": gpu_facts(),
    }
