#!/usr/bin/python
# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_facts
short_description: Gather what Spectr needs to know about a host, GPUs included
version_added: 0.1.0
description:
  - Reports the operating system, kernel, CPU, memory, disks, Docker engine and Compose
    versions, and NVIDIA GPUs (from C(nvidia-smi) when it is installed).
  - Sets the fact C(spectr_host) and returns the same data as RV(host).
  - Read-only; never reports a change.
options:
  gather_gpus:
    description: Query C(nvidia-smi) for GPUs.
    type: bool
    default: true
  nvidia_smi_path:
    description: The C(nvidia-smi) command, by name on E(PATH) or as an absolute path.
    type: str
    default: nvidia-smi
  docker_path:
    description: The C(docker) command, by name on E(PATH) or as an absolute path.
    type: str
    default: docker
requirements:
  - Python 3 on the host, standard library only
  - C(nvidia-smi) (NVIDIA driver) on the host for the GPU list; without it RV(host.gpus) is empty
  - The C(docker) CLI on the host for the engine and Compose versions; without it they are null
notes:
  - Runs on the managed host. Disks are the mounted file systems that are not pseudo file
    systems and whose mount point is a folder; files bind-mounted into a container (Docker's
    C(/etc/resolv.conf), C(/etc/hosts), C(/etc/hostname)) are left out.
  - The module reads the host and never changes it; it runs in check mode as it does otherwise.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
author:
  - Spectr authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Gather Spectr's host facts
  spectr.core.host_facts:

- name: Show the GPU models
  ansible.builtin.debug:
    msg: "{{ spectr_host.gpus | map(attribute='name') | list }}"
"""

RETURN = r"""
host:
  description: Facts about the host, also set as the fact C(spectr_host).
  returned: always
  type: dict
  contains:
    hostname:
      description: The host's name as its kernel reports it (C(uname -n)).
      type: str
    os:
      description: From /etc/os-release (id, name, version_id, pretty_name, codename).
      type: dict
    kernel:
      description: Kernel release and machine architecture.
      type: dict
    cpu:
      description: Model, sockets and logical CPU count.
      type: dict
    memory:
      description: Total, available and swap memory in MiB.
      type: dict
    disks:
      description: Mounted file systems with size and free space in MiB.
      type: list
      elements: dict
    docker:
      description: Engine version (null when Docker is absent or down) and Compose version.
      type: dict
    gpus:
      description: One entry per NVIDIA GPU (index, uuid, name, memory in MiB, driver, CUDA).
      type: list
      elements: dict
  sample:
    hostname: gpu-01
    os: {id: debian, version_id: "12"}
    gpus:
      - {index: 0, name: NVIDIA H100 80GB HBM3, memory_total_mb: 81559, cuda_version: "12.4"}
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spectr.core.plugins.module_utils._host_facts import (
    NVIDIA_SMI_QUERY_FIELDS,
    disk_usage,
    parse_compose_version,
    parse_cpuinfo,
    parse_cuda_version,
    parse_meminfo,
    parse_mounts,
    parse_nvidia_smi_csv,
    parse_os_release,
)


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


def command_output(module, argv):
    """Run a command; return its stdout, or None when it is missing or fails."""
    executable = module.get_bin_path(argv[0]) if not os.path.isabs(argv[0]) else argv[0]
    if not executable or not os.access(executable, os.X_OK):
        return None
    rc, out, dummy = module.run_command([executable] + argv[1:])
    return out if rc == 0 else None


def gather_disks():
    disks = []
    for device, mount_point, fstype in parse_mounts(read_text("/proc/mounts")):
        try:
            usage = disk_usage(mount_point, os.statvfs(mount_point))
        except OSError:
            continue
        usage.update(device=device, fstype=fstype)
        disks.append(usage)
    return disks


def gather_docker(module):
    docker = module.params["docker_path"]
    engine = command_output(module, [docker, "version", "--format", "{{.Server.Version}}"])
    compose = command_output(module, [docker, "compose", "version", "--short"])
    if compose is None:
        compose = command_output(module, ["docker-compose", "version", "--short"])
    return {
        "engine_version": engine.strip() if engine else None,
        "compose_version": parse_compose_version(compose) if compose else None,
    }


def gather_gpus(module):
    nvidia_smi = module.params["nvidia_smi_path"]
    query = "--query-gpu=" + ",".join(NVIDIA_SMI_QUERY_FIELDS)
    csv = command_output(module, [nvidia_smi, query, "--format=csv,noheader,nounits"])
    if csv is None:
        return []
    try:
        gpus = parse_nvidia_smi_csv(csv)
    except ValueError as error:
        module.fail_json(msg="cannot parse nvidia-smi output: %s" % error, stdout=csv)
    cuda_version = parse_cuda_version(command_output(module, [nvidia_smi]) or "")
    for gpu in gpus:
        gpu["cuda_version"] = cuda_version
    return gpus


def gather_host(module):
    uname = platform.uname()
    cpu = parse_cpuinfo(read_text("/proc/cpuinfo"))
    cpu["logical"] = cpu["logical"] or os.cpu_count() or 0
    return {
        "hostname": uname[1],
        "os": parse_os_release(read_text("/etc/os-release")),
        "kernel": {"release": uname[2], "architecture": uname[4]},
        "cpu": cpu,
        "memory": parse_meminfo(read_text("/proc/meminfo")),
        "disks": gather_disks(),
        "docker": gather_docker(module),
        "gpus": gather_gpus(module) if module.params["gather_gpus"] else [],
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            gather_gpus=dict(type="bool", default=True),
            nvidia_smi_path=dict(type="str", default="nvidia-smi"),
            docker_path=dict(type="str", default="docker"),
        ),
        supports_check_mode=True,
    )
    host = gather_host(module)
    module.exit_json(changed=False, host=host, ansible_facts={"spectr_host": host})


if __name__ == "__main__":
    main()
