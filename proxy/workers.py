"""Several proxy processes on one port (SO_REUSEPORT), supervised by one parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def without_option(argv: list[str], name: str) -> list[str]:
    """Return argv without `name VALUE` and `name=VALUE`."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg == name:
            skip_value = True
        elif not arg.startswith(name + "="):
            kept.append(arg)
    return kept


def worker_command(argv: list[str], index: int, admin_port: int) -> list[str]:
    """Return the command line of worker `index`: one process, SO_REUSEPORT, its own admin port."""
    args = without_option(without_option(argv, "--workers"), "--admin-port")
    port = admin_port + index if admin_port else 0
    return [
        *(sys.executable, "-m", "proxy", *args, "--reuse-port", "--admin-port", str(port)),
        *("--worker-index", str(index)),
    ]


def run_workers(argv: list[str], count: int, admin_port: int) -> int:
    """Start `count` workers and stop them all when one exits or a signal arrives."""
    procs = [subprocess.Popen(worker_command(argv, i, admin_port)) for i in range(count)]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    return max((p.wait() for p in procs), default=0)
