"""Build a private Ansible inventory: one host per machine, secrets in 0600 files.

Nothing here disables host key checking: a host with a recorded key is checked strictly
against it, and only a host never contacted before may add its key (accept-new).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class InventoryHost:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    private_key: str | None = None  # PEM text
    password: str | None = None
    become_method: str = "sudo"
    known_host_key: str | None = None  # a known_hosts line recorded at first contact
    vars: dict[str, Any] = field(default_factory=dict)


def write_private_file(path: Path, content: str) -> Path:
    """Write `content` to `path` readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content if content.endswith("\n") else content + "\n")
    return path


def build_inventory(hosts: list[InventoryHost], data_dir: Path) -> dict[str, Any]:
    """Return an inventory dict for ansible-runner; keys and known_hosts go under data_dir."""
    known_hosts = data_dir / "known_hosts"
    lines = [host.known_host_key for host in hosts if host.known_host_key]
    write_private_file(known_hosts, "\n".join(lines))
    return {
        "all": {"hosts": {host.name: _host_vars(host, data_dir, known_hosts) for host in hosts}}
    }


def _host_vars(host: InventoryHost, data_dir: Path, known_hosts: Path) -> dict[str, Any]:
    checking = "yes" if host.known_host_key else "accept-new"
    variables: dict[str, Any] = {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "ansible_become_method": host.become_method,
        "ansible_python_interpreter": "auto_silent",
        "ansible_ssh_common_args": (
            f"-o UserKnownHostsFile={shlex.quote(str(known_hosts))} "
            f"-o StrictHostKeyChecking={checking} -o ConnectTimeout=10"
        ),
    }
    if host.private_key:
        key_file = write_private_file(data_dir / "keys" / _safe(host.name), host.private_key)
        variables["ansible_ssh_private_key_file"] = str(key_file)
        variables["ansible_ssh_common_args"] += " -o IdentitiesOnly=yes"
    if host.password:
        variables["ansible_password"] = host.password
        if host.user != "root":
            variables["ansible_become_password"] = host.password
    variables.update(host.vars)
    return variables


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
