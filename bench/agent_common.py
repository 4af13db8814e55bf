"""Shared setup of the agent benchmarks: a throw-away PKI, an agent process, test containers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from agent.tests.harness import (  # noqa: E402
    AgentProcess,
    CertificateAuthority,
    base_image,
    unique_name,
)


def rss_kib(pid: int) -> int:
    """Return a process's resident set size in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.contextmanager
def running_agent() -> Iterator[tuple[AgentProcess, str]]:
    """Start an agent over TLS on 127.0.0.1; yield it with the CA path."""
    subprocess.run([str(REPO_ROOT / "scripts" / "ensure-docker.sh")], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="spectr-bench-") as folder:
        ca = CertificateAuthority.create("bench", Path(folder))
        process = AgentProcess(Path(folder), ca.issue("agent", server=True)).start()
        try:
            yield process, ca.cert_path
        finally:
            process.stop()


@contextlib.contextmanager
def container(command: list[str], purpose: str) -> Iterator[str]:
    """Run a test container and remove it afterwards; yield its name."""
    name = unique_name(purpose)
    subprocess.run(["docker", "run", "-d", "--name", name, base_image(), *command], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
