"""SSH host keys: read a host's keys at first contact and check them on every later one.

Spectr never turns host key checking off. The first contact records what `ssh-keyscan` sees
(known_hosts lines) and shows the SHA256 fingerprint; Ansible then runs with
StrictHostKeyChecking=yes against exactly those lines, and a host presenting another key is
refused with a message that names both fingerprints.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
from dataclasses import dataclass

from portal.core.operations.kinds import PermanentError, TransientError

KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa")
KEYSCAN_TIMEOUT_S = 8


class HostKeyChanged(PermanentError):
    """The host presents another SSH host key than the one recorded at first contact."""


@dataclass(frozen=True)
class ScannedKeys:
    known_hosts: str  # known_hosts lines, one per key type
    fingerprint: str  # SHA256:... of the preferred key


def fingerprint_of(known_hosts_line: str) -> str:
    """The OpenSSH SHA256 fingerprint of the key in a known_hosts line."""
    parts = known_hosts_line.split()
    if len(parts) < 3:
        raise ValueError(f"not a known_hosts line: {known_hosts_line!r}")
    digest = hashlib.sha256(base64.b64decode(parts[2])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_types(known_hosts: str) -> dict[str, str]:
    """Map key type to the base64 key of each line in a known_hosts text."""
    keys = {}
    for line in known_hosts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            keys[parts[1]] = parts[2]
    return keys


def scan_host_keys(address: str, port: int) -> ScannedKeys:
    """Read the host's keys with ssh-keyscan; an unanswering host is a transient failure."""
    _require_open_port(address, port)
    try:
        result = subprocess.run(
            ["ssh-keyscan", "-T", str(KEYSCAN_TIMEOUT_S), "-p", str(port), address],
            capture_output=True,
            text=True,
            timeout=KEYSCAN_TIMEOUT_S * 3,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TransientError(f"Host unreachable: no SSH answer from {address}:{port}.") from None
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    if not lines:
        detail = result.stderr.strip().splitlines()[-1:] or ["no answer"]
        raise TransientError(
            f"Host unreachable: SSH on {address}:{port} did not answer ({detail[0]})."
        )
    preferred = _preferred_line(lines)
    return ScannedKeys("\n".join(lines), fingerprint_of(preferred))


def _require_open_port(address: str, port: int) -> None:
    """Fail with the socket's own words (refused, timed out, no route) before scanning."""
    try:
        socket.create_connection((address, port), timeout=KEYSCAN_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        raise TransientError(f"Host unreachable: {address}:{port}: {reason}.") from None


def check_host_key(recorded: str, scanned: ScannedKeys, recorded_fingerprint: str | None) -> None:
    """Raise HostKeyChanged unless every key type seen now matches the recorded key."""
    before, now = key_types(recorded), key_types(scanned.known_hosts)
    common = set(before) & set(now)
    if common and all(before[kind] == now[kind] for kind in common):
        return
    raise HostKeyChanged(
        "Host key changed: the host now presents "
        f"{scanned.fingerprint}, but {recorded_fingerprint or 'another key'} was recorded at "
        "first contact. If the machine was reinstalled, forget the recorded key on the host "
        "page and bootstrap again; otherwise someone may be intercepting the connection."
    )


def _preferred_line(lines: list[str]) -> str:
    by_type = {line.split()[1]: line for line in lines if len(line.split()) >= 3}
    for kind in KEY_PREFERENCE:
        if kind in by_type:
            return by_type[kind]
    return lines[0]
