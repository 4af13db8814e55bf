"""Unit tests of host_facts' parsers (no host, no GPU needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.spectr.core.plugins.module_utils._host_facts import (
    disk_usage,
    parse_compose_version,
    parse_cpuinfo,
    parse_cuda_version,
    parse_meminfo,
    parse_mounts,
    parse_nvidia_smi_csv,
    parse_os_release,
)

DATA = Path(__file__).parent / "data"
# No GPU on this machine: these files stand in for one. They follow the exact format of
# `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,driver_version
#  --format=csv,noheader,nounits` and of the plain `nvidia-smi` banner on an H100 host.
H100_QUERY = (DATA / "nvidia-smi-h100-query.csv").read_text()
H100_BANNER = (DATA / "nvidia-smi-h100-banner.txt").read_text()


def test_parse_nvidia_smi_reads_every_gpu_with_typed_fields() -> None:
    gpus = parse_nvidia_smi_csv(H100_QUERY)

    assert [gpu["index"] for gpu in gpus] == [0, 1, 2, 3]
    assert gpus[1] == {
        "index": 1,
        "uuid": "GPU-b1e4f0a2-5d6c-2f1e-9a8b-3c4d5e6f7a8b",
        "name": "NVIDIA H100 80GB HBM3",
        "memory_total_mb": 81559,
        "memory_used_mb": 74215,
        "driver_version": "550.54.15",
    }


def test_parse_nvidia_smi_turns_not_available_fields_into_none() -> None:
    gpus = parse_nvidia_smi_csv("0, GPU-1, NVIDIA H200, [N/A], [N/A], 560.35.03\n")

    assert gpus[0]["memory_total_mb"] is None
    assert gpus[0]["name"] == "NVIDIA H200"


def test_parse_nvidia_smi_rejects_a_line_with_missing_fields() -> None:
    with pytest.raises(ValueError, match="line 2 has 3 fields"):
        parse_nvidia_smi_csv(H100_QUERY.splitlines()[0] + "\n1, GPU-x, H100\n")


def test_parse_nvidia_smi_of_empty_output_is_no_gpu() -> None:
    assert parse_nvidia_smi_csv("\n") == []


def test_parse_cuda_version_from_banner() -> None:
    assert parse_cuda_version(H100_BANNER) == "12.4"
    assert parse_cuda_version("NVIDIA-SMI has failed") is None


def test_parse_os_release_strips_quotes() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'

    facts = parse_os_release(text)

    assert facts == {
        "id": "debian",
        "name": "",
        "version_id": "12",
        "pretty_name": "Debian GNU/Linux 12 (bookworm)",
        "codename": "bookworm",
    }


def test_parse_meminfo_converts_to_mib() -> None:
    text = "MemTotal:       2097152 kB\nMemFree:         100000 kB\nMemAvailable:    1048576 kB\nSwapTotal: 0 kB\n"

    assert parse_meminfo(text) == {"total_mb": 2048, "available_mb": 1024, "swap_total_mb": 0}


def test_parse_cpuinfo_counts_logical_cpus_and_sockets() -> None:
    block = (
        "processor\t: {n}\nmodel name\t: AMD EPYC 9654 96-Core Processor\nphysical id\t: {s}\n\n"
    )
    text = "".join(block.format(n=n, s=n // 2) for n in range(4))

    assert parse_cpuinfo(text) == {
        "model": "AMD EPYC 9654 96-Core Processor",
        "sockets": 2,
        "logical": 4,
    }


def test_parse_mounts_keeps_real_file_systems_only() -> None:
    text = (
        "/dev/nvme0n1p2 / ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
        "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n"
        "/dev/md0 /data\\040disk xfs rw 0 0\n"
        "/dev/nvme0n1p2 / ext4 rw 0 0\n"
    )

    assert parse_mounts(text, is_directory=lambda path: True) == [
        ("/dev/nvme0n1p2", "/", "ext4"),
        ("/dev/md0", "/data disk", "xfs"),
    ]


def test_parse_mounts_leaves_out_files_bind_mounted_into_a_container() -> None:
    # /proc/mounts of a Docker container: its own root, a volume, and the three files Docker
    # bind-mounts from the host's disk.
    text = (
        "overlay / overlay rw,lowerdir=/var/lib/docker/overlay2/l/A 0 0\n"
        "/dev/sda1 /var/lib/docker ext4 rw,relatime 0 0\n"
        "/dev/sda1 /etc/resolv.conf ext4 rw,relatime 0 0\n"
        "/dev/sda1 /etc/hostname ext4 rw,relatime 0 0\n"
        "/dev/sda1 /etc/hosts ext4 rw,relatime 0 0\n"
    )
    files = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}

    mounts = parse_mounts(text, is_directory=lambda path: path not in files)

    assert mounts == [("/dev/sda1", "/var/lib/docker", "ext4")]


def test_parse_mounts_checks_the_mount_points_on_this_machine_by_default(tmp_path: Path) -> None:
    folder, file = tmp_path / "folder", tmp_path / "file"
    folder.mkdir()
    file.write_text("")
    text = f"/dev/sda1 {folder} ext4 rw 0 0\n/dev/sda1 {file} ext4 rw 0 0\n"

    assert parse_mounts(text) == [("/dev/sda1", str(folder), "ext4")]


def test_disk_usage_of_the_root_file_system_is_consistent() -> None:
    usage = disk_usage("/", os.statvfs("/"))

    assert usage["mount"] == "/"
    assert 0 <= usage["free_mb"] <= usage["size_mb"]


@pytest.mark.parametrize(
    ("output", "version"),
    [("v2.29.7\n", "2.29.7"), ("2.26.1-4\n", "2.26.1-4"), ("1.29.2\n", "1.29.2"), ("", None)],
)
def test_parse_compose_version(output: str, version: str | None) -> None:
    assert parse_compose_version(output) == version
