"""A private redis-server for tests that stop Redis: the machine's own is shared and must run."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RedisServer:
    """redis-server on 127.0.0.1 and a free port that keeps nothing on disk: a restart
    empties it, as a Redis that lost its data would be."""

    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not listen on {self.port} within 10 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Kill it (no save, no goodbye), if it runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
