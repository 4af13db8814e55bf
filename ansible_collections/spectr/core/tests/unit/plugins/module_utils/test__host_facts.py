# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Parsers of _host_facts on what real hosts print (no host, no GPU needed)."""

from __future__ import annotations

import collections

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

# `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,driver_version
#  --format=csv,noheader,nounits` on a 2-GPU H100 host, one GPU busy.
H100_QUERY = (
    "0, GPU-6d2a7f6c-3c1b-8e8d-51f0-7f2b59a1c0d4, NVIDIA H100 80GB HBM3, 81559, 1, 550.54.15\n"
    "1, GPU-b1e4f0a2-5d6c-2f1e-9a8b-3c4d5e6f7a8b, NVIDIA H100 80GB HBM3, 81559, 74215, 550.54.15\n"
)
# The head of plain `nvidia-smi` on the same host.
H100_BANNER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""
StatVfs = collections.namedtuple("StatVfs", "f_frsize f_blocks f_bavail")


def test_nvidia_smi_gives_one_typed_entry_per_gpu():
    gpus = parse_nvidia_smi_csv(H100_QUERY)

    assert gpus == [
        {"index": 0, "uuid": "GPU-6d2a7f6c-3c1b-8e8d-51f0-7f2b59a1c0d4",
         "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559, "memory_used_mb": 1,
         "driver_version": "550.54.15"},
        {"index": 1, "uuid": "GPU-b1e4f0a2-5d6c-2f1e-9a8b-3c4d5e6f7a8b",
         "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559, "memory_used_mb": 74215,
         "driver_version": "550.54.15"},
    ]


def test_nvidia_smi_fields_a_gpu_does_not_support_are_none():
    gpus = parse_nvidia_smi_csv("0, GPU-1, NVIDIA H200, [N/A], [N/A], 560.35.03\n")

    assert (gpus[0]["memory_total_mb"], gpus[0]["memory_used_mb"]) == (None, None)
    assert gpus[0]["name"] == "NVIDIA H200"


def test_nvidia_smi_line_with_missing_fields_is_refused_naming_the_line():
    text = H100_QUERY.splitlines()[0] + "\n1, GPU-x, H100\n"

    with pytest.raises(ValueError, match="line 2 has 3 fields, expected 6"):
        parse_nvidia_smi_csv(text)


def test_nvidia_smi_blank_output_means_no_gpu():
    assert parse_nvidia_smi_csv("\n  \n") == []


def test_cuda_version_comes_from_the_banner():
    assert parse_cuda_version(H100_BANNER) == "12.4"
    assert parse_cuda_version("NVIDIA-SMI has failed because it couldn't communicate") is None


def test_os_release_values_lose_their_quotes_and_comments_are_skipped():
    text = (
        "# written by the distribution\n"
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        "ID=debian\nVERSION_ID='12'\nVERSION_CODENAME=bookworm\n"
    )

    assert parse_os_release(text) == {
        "id": "debian",
        "name": "Debian GNU/Linux",
        "version_id": "12",
        "pretty_name": "Debian GNU/Linux 12 (bookworm)",
        "codename": "bookworm",
    }


def test_os_release_of_an_empty_file_has_every_key_empty():
    assert set(parse_os_release("").values()) == {""}


def test_meminfo_is_converted_to_mib():
    text = "MemTotal:  2097152 kB\nMemFree:  100000 kB\nMemAvailable:  1048576 kB\nSwapTotal: 0 kB\n"

    assert parse_meminfo(text) == {"total_mb": 2048, "available_mb": 1024, "swap_total_mb": 0}


def test_meminfo_of_an_old_kernel_without_memavailable_uses_memfree():
    text = "MemTotal:  4194304 kB\nMemFree:  524288 kB\nSwapTotal: 1048576 kB\n"

    assert parse_meminfo(text) == {"total_mb": 4096, "available_mb": 512, "swap_total_mb": 1024}


def test_cpuinfo_counts_logical_cpus_and_sockets():
    block = "processor\t: {n}\nmodel name\t: AMD EPYC 9654 96-Core Processor\nphysical id\t: {s}\n\n"
    text = "".join(block.format(n=n, s=n // 2) for n in range(4))

    assert parse_cpuinfo(text) == {
        "model": "AMD EPYC 9654 96-Core Processor", "sockets": 2, "logical": 4}


def test_cpuinfo_without_physical_ids_is_one_socket():
    # A VM or an ARM host often prints no "physical id" lines.
    text = "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n"

    assert parse_cpuinfo(text) == {"model": "", "sockets": 1, "logical": 2}


def test_mounts_keep_real_file_systems_once_each():
    text = (
        "/dev/nvme0n1p2 / ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
        "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n"
        "/dev/md0 /data\\040disk xfs rw 0 0\n"
        "/dev/sdb1 /dev/shm/odd ext4 rw 0 0\n"
        "none /mnt/none ext4 rw 0 0\n"
        "short line\n"
        "/dev/nvme0n1p2 / ext4 rw 0 0\n"
    )

    # Every mount point is a folder here; files bind-mounted into a container are the next test.
    assert parse_mounts(text, is_directory=lambda path: True) == [
        ("/dev/nvme0n1p2", "/", "ext4"),
        ("/dev/md0", "/data disk", "xfs"),
    ]


def test_mounts_leave_out_files_bind_mounted_into_a_container():
    text = (
        "overlay / overlay rw 0 0\n"
        "/dev/sda1 /var/lib/docker ext4 rw 0 0\n"
        "/dev/sda1 /etc/resolv.conf ext4 rw 0 0\n"
        "/dev/sda1 /etc/hosts ext4 rw 0 0\n"
    )
    files = {"/etc/resolv.conf", "/etc/hosts"}

    mounts = parse_mounts(text, is_directory=lambda path: path not in files)

    assert mounts == [("/dev/sda1", "/var/lib/docker", "ext4")]


def test_disk_usage_is_in_mib_from_fragment_size_and_available_blocks():
    # 4 KiB fragments: 2,621,440 blocks are 10,240 MiB; 262,144 available are 1,024 MiB.
    usage = disk_usage("/data", StatVfs(f_frsize=4096, f_blocks=2621440, f_bavail=262144))

    assert usage == {"mount": "/data", "size_mb": 10240, "free_mb": 1024}


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("v2.29.7\n", "2.29.7"),
        ("2.26.1-4\n", "2.26.1-4"),
        ("1.29.2\n", "1.29.2"),
        ("Docker Compose version v2.20.2+ds1-0ubuntu1\n", "2.20.2+ds1-0ubuntu1"),
        ("", None),
        ("docker: 'compose' is not a docker command.", None),
    ],
)
def test_compose_version(output, version):
    assert parse_compose_version(output) == version
