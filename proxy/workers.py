"""Several proxy processes on one port (SO_REUSEPORT), supervised by one parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def worker_command(argv: list[str], index: int, admin_port: int) -> list[str]:
    """Return the command line of worker `index`: one process, SO_REUSEPORT, its own admin port."""
    args = [a for a in argv if not a.startswith("--workers")]
    if "--workers" in argv:
        i = argv.index("--workers")
        args = argv[:i] + argv[i + 2 :]
    port = admin_port + index if admin_port else 0
    return [sys.executable, "-m", "proxy", *args, "--reuse-port", "--admin-port", str(port)]


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
