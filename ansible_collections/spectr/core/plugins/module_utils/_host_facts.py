# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
#
# This module_utils is PRIVATE to spectr.core: its API may change without notice.
"""Parse what a Linux host says about itself (/proc, /etc/os-release, nvidia-smi)."""

from __future__ import annotations

import os
import re

NVIDIA_SMI_QUERY_FIELDS = (
    "index",
    "uuid",
    "name",
    "memory.total",
    "memory.used",
    "driver_version",
)
# File systems that are not disks a workload can use.
PSEUDO_FSTYPES = frozenset(
    (
        "proc sysfs tmpfs devtmpfs devpts cgroup cgroup2 mqueue overlay securityfs debugfs "
        "tracefs pstore bpf autofs hugetlbfs configfs fusectl binfmt_misc nsfs rpc_pipefs "
        "squashfs ramfs efivarfs shm fuse.lxcfs"
    ).split()
)


def parse_os_release(text):
    """Return the key/value pairs of an os-release file with quotes removed."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip('"').strip("'")
    return {
        "id": values.get("ID", ""),
        "name": values.get("NAME", ""),
        "version_id": values.get("VERSION_ID", ""),
        "pretty_name": values.get("PRETTY_NAME", ""),
        "codename": values.get("VERSION_CODENAME", ""),
    }


def parse_meminfo(text):
    """Return total and available memory in MiB from /proc/meminfo."""
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


def parse_cpuinfo(text):
    """Return the CPU model, socket count and logical CPU count from /proc/cpuinfo."""
    model = ""
    sockets = set()
    logical = 0
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
    return {"model": model, "sockets": max(len(sockets), 1), "logical": logical}


def parse_mounts(text, is_directory=os.path.isdir):
    """Return (device, mount point, fstype) of real file systems in /proc/mounts.

    A mount point that is not a directory is a file bind-mounted into a container (Docker
    mounts /etc/resolv.conf, /etc/hosts and /etc/hostname so): not a disk, left out.
    """
    mounts = []
    seen = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount_point, fstype = fields[0], fields[1].replace("\\040", " "), fields[2]
        if fstype in PSEUDO_FSTYPES or mount_point in seen:
            continue
        if mount_point.startswith(("/proc", "/sys", "/dev", "/run")) or device == "none":
            continue
        if not is_directory(mount_point):
            continue
        seen.add(mount_point)
        mounts.append((device, mount_point, fstype))
    return mounts


def disk_usage(mount_point, statvfs_result):
    """Return size and free space in MiB of one mounted file system."""
    block = statvfs_result.f_frsize
    total = statvfs_result.f_blocks * block // (1024 * 1024)
    free = statvfs_result.f_bavail * block // (1024 * 1024)
    return {"mount": mount_point, "size_mb": total, "free_mb": free}


def _number(value):
    value = value.strip()
    try:
        return int(value)
    except ValueError:
        return None  # "[N/A]" and similar: the field is not supported on this GPU


def parse_nvidia_smi_csv(text):
    """Return one dict per GPU from `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`."""
    gpus = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(NVIDIA_SMI_QUERY_FIELDS):
            raise ValueError(
                "nvidia-smi line %d has %d fields, expected %d: %r"
                % (line_number, len(fields), len(NVIDIA_SMI_QUERY_FIELDS), line)
            )
        index, uuid, name, total, used, driver = fields
        gpus.append(
            {
                "index": _number(index),
                "uuid": uuid,
                "name": name,
                "memory_total_mb": _number(total),
                "memory_used_mb": _number(used),
                "driver_version": driver,
            }
        )
    return gpus


def parse_cuda_version(nvidia_smi_text):
    """Return the CUDA version from the banner of plain `nvidia-smi`, or None."""
    match = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", nvidia_smi_text)
    return match.group(1) if match else None


def parse_compose_version(text):
    """Return the version from `docker compose version --short` (which may say 'v2.x')."""
    text = text.strip()
    match = re.search(r"v?(\d+\.\d+[\w.+-]*)", text)
    return match.group(1) if match else None
