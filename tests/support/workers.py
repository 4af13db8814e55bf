"""Stopping the `spectr worker` processes a test started."""

from __future__ import annotations

import signal
import subprocess


def stop_workers(processes: list[subprocess.Popen], timeout: float = 10) -> None:
    """SIGINT every process still running (huey lets its tasks finish), SIGKILL after `timeout`."""
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
