"""Per-container CPU and memory read from cgroup files, as cAdvisor does.

The Engine API's stats call takes up to a second per container even with one-shot, so a
scrape of a busy host through it would outlast Prometheus' timeout.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _first_text(paths: list[Path]) -> str | None:
    for path in paths:
        try:
            return path.read_text()
        except OSError:
            continue
    return None


def _v1_dirs(controller: str, container_id: str) -> list[Path]:
    bases = (
        [ROOT / controller, ROOT / "cpu,cpuacct"]
        if controller == "cpuacct"
        else [ROOT / controller]
    )
    return [
        base / relative
        for base in bases
        for relative in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")
    ]


def _v2_dirs(container_id: str) -> list[Path]:
    return [ROOT / f"system.slice/docker-{container_id}.scope", ROOT / f"docker/{container_id}"]


def cpu_seconds(container_id: str) -> float | None:
    """Return the container's total CPU time, or None when no cgroup file is readable."""
    v1 = _first_text([d / "cpuacct.usage" for d in _v1_dirs("cpuacct", container_id)])
    if v1 is not None:
        return int(v1) / 1e9
    stat = _first_text([d / "cpu.stat" for d in _v2_dirs(container_id)])
    for line in (stat or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return None


def memory_bytes(container_id: str) -> int | None:
    """Return the container's memory usage, or None when no cgroup file is readable."""
    paths = [d / "memory.usage_in_bytes" for d in _v1_dirs("memory", container_id)]
    paths += [d / "memory.current" for d in _v2_dirs(container_id)]
    text = _first_text(paths)
    return int(text) if text is not None else None
