"""Host facts in the shape of the spectr.core collection's host_facts module.

The agent cannot import the collection (hosts do not install it as a Python package), so the
same parsing lives here; agent/tests compare both on this machine.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from typing import Any

from agent.docker_api import DockerAPI, DockerError

GPU_QUERY = "index,uuid,name,memory.total,memory.used,driver_version"
# Telemetry for /metrics: one nvidia-smi call per scrape gives memory, load, heat and power.
GPU_TELEMETRY_QUERY = (
    "index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw"
)
MIB = 1024 * 1024
_PSEUDO_FSTYPES = frozenset(
    [
        "proc",
        "sysfs",
        "tmpfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "mqueue",
        "overlay",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "autofs",
        "hugetlbfs",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "nsfs",
        "rpc_pipefs",
        "squashfs",
        "ramfs",
        "efivarfs",
        "shm",
        "fuse.lxcfs",
    ]
)


def read_text(path: str) -> str:
    """Return a file's text, or "" when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def os_release(text: str) -> dict[str, str]:
    """Return id, name, version_id, pretty_name and codename from os-release text."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip('"').strip("'")
    keys = {"id": "ID", "name": "NAME", "version_id": "VERSION_ID",
            "pretty_name": "PRETTY_NAME", "codename": "VERSION_CODENAME"}  # fmt: skip
    return {ours: values.get(theirs, "") for ours, theirs in keys.items()}


def cpu_facts(text: str) -> dict[str, Any]:
    """Return model, socket count and logical CPU count from /proc/cpuinfo text."""
    model, sockets, logical = "", set(), 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "processor":
            logical += 1
        elif key == "model name" and not model:
            model = value.strip()
        elif key == "physical id":
            sockets.add(value.strip())
    return {"model": model, "sockets": max(len(sockets), 1), "logical": logical or os.cpu_count()}


def memory_facts(text: str) -> dict[str, int]:
    """Return total, available and swap memory in MiB from /proc/meminfo text."""
    kib = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+)\s*kB", line)
        if match:
            kib[match.group(1)] = int(match.group(2))
    return {
        "total_mb": kib.get("MemTotal", 0) // 1024,
        "available_mb": kib.get("MemAvailable", kib.get("MemFree", 0)) // 1024,
        "swap_total_mb": kib.get("SwapTotal", 0) // 1024,
    }


def disk_facts(text: str) -> list[dict[str, Any]]:
    """Return size and free space (MiB) of each real file system in /proc/mounts text."""
    disks, seen = [], set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount, fstype = fields[0], fields[1].replace("\\040", " "), fields[2]
        if fstype in _PSEUDO_FSTYPES or mount in seen or device == "none":
            continue
        if mount.startswith(("/proc", "/sys", "/dev", "/run")):
            continue
        try:
            stat = os.statvfs(mount)
        except OSError:
            continue
        seen.add(mount)
        disks.append({"mount": mount, "size_mb": stat.f_blocks * stat.f_frsize // MIB,
                      "free_mb": stat.f_bavail * stat.f_frsize // MIB,
                      "device": device, "fstype": fstype})  # fmt: skip
    return disks


def _number(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None  # "[N/A]": the GPU does not report it


def parse_nvidia_smi_csv(output: str, cuda_version: str | None) -> list[dict[str, Any]]:
    """Parse `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output."""
    gpus = []
    for line in output.strip().splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 6:
            continue
        index, uuid, name, total, used, driver = cells
        gpus.append({"index": _number(index), "uuid": uuid, "name": name,
                     "memory_total_mb": _number(total), "memory_used_mb": _number(used),
                     "driver_version": driver, "cuda_version": cuda_version})  # fmt: skip
    return gpus


def _float(value: str) -> float | None:
    try:
        return float(value.strip())
    except ValueError:
        return None  # "[N/A]" or "[Not Supported]"


def parse_gpu_telemetry_csv(output: str) -> list[dict[str, Any]]:
    """Parse `nvidia-smi --query-gpu=<GPU_TELEMETRY_QUERY> --format=csv,noheader,nounits`."""
    gpus = []
    for line in output.strip().splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 8:
            continue
        index, uuid, name, total, used, utilization, temperature, power = cells
        gpus.append({"index": _number(index), "uuid": uuid, "name": name,
                     "memory_total_mb": _number(total), "memory_used_mb": _number(used),
                     "utilization_percent": _float(utilization),
                     "temperature_celsius": _float(temperature),
                     "power_watts": _float(power)})  # fmt: skip
    return gpus


def gpu_telemetry() -> list[dict[str, Any]]:
    """Return live GPU readings, or [] when nvidia-smi is absent or fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    csv = _run([binary, f"--query-gpu={GPU_TELEMETRY_QUERY}", "--format=csv,noheader,nounits"])
    return parse_gpu_telemetry_csv(csv) if csv else []


def _run(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def gpu_facts() -> list[dict[str, Any]]:
    """Return NVIDIA GPUs, or [] when nvidia-smi is absent or fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    csv = _run([binary, f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"])
    if csv is None:
        return []
    match = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", _run([binary]) or "")
    return parse_nvidia_smi_csv(csv, match.group(1) if match else None)


def docker_facts(docker: DockerAPI) -> dict[str, Any]:
    """Return the engine's and Compose's versions (None when absent) and engine details."""
    compose = None
    cli = shutil.which("docker")
    if cli:
        match = re.search(
            r"v?(\d+\.\d+[\w.+-]*)", _run([cli, "compose", "version", "--short"]) or ""
        )
        compose = match.group(1) if match else None
    try:
        version = docker.request("GET", "/version", timeout=5)
        info = docker.request("GET", "/info", timeout=5)
    except DockerError as error:
        return {"engine_version": None, "compose_version": compose, "reachable": False,
                "error": error.message}  # fmt: skip
    return {"engine_version": version.get("Version"), "compose_version": compose,
            "reachable": True, "api_version": version.get("ApiVersion"),
            "storage_driver": info.get("Driver"), "containers": info.get("Containers"),
            "images": info.get("Images")}  # fmt: skip


def host_facts(docker: DockerAPI) -> dict[str, Any]:
    """Collect every fact; each part degrades to empty values rather than failing."""
    uname = platform.uname()
    return {
        "hostname": uname.node,
        "os": os_release(read_text("/etc/os-release")),
        "kernel": {"release": uname.release, "architecture": uname.machine},
        "cpu": cpu_facts(read_text("/proc/cpuinfo")),
        "memory": memory_facts(read_text("/proc/meminfo")),
        "disks": disk_facts(read_text("/proc/mounts")),
        "docker": docker_facts(docker),
        "gpus": gpu_facts(),
    }
