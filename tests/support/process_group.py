"""Stopping a test's server started in a process group of its own (start_new_session=True)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen | None, grace_s: float = 10) -> None:
    """TERM the group, then KILL it if it has not gone within grace_s seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop_direct_service(service_name: str, executable: str) -> None:
    """Stop what spectr.core.service started in direct mode (start-stop-daemon, a pid file).

    The pid file together with the program: when the service ended by itself, the pid left in its
    file may belong to any process by now (another test's server, say), and must not be signalled.
    """
    subprocess.run(
        ["start-stop-daemon", "--stop", "--retry", "TERM/10/KILL/5", "--remove-pidfile",
         "--pidfile", f"/run/{service_name}.pid", "--exec", executable],
        capture_output=True, check=False,
    )  # fmt: skip
