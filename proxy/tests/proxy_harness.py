"""Run real spectr-proxy processes for tests: config files, keys, ports, readiness."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("SPECTR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A hang guard, not a measurement: a proxy (or two workers) starting on 2 cores at load 15-20
# took 10-20 s to listen.
START_TIMEOUT_S = 60.0


def wait_for_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def new_key() -> tuple[str, str]:
    """Return a fresh secret key and its SHA-256, as the portal would store it."""
    secret = "sk-spectr-" + secrets.token_urlsafe(24)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def write_config(path: Path, document: dict[str, Any]) -> None:
    """Replace the config file in one rename, as a deploy tool would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


@dataclass
class ProxyProcess:
    """One spectr-proxy process on free ports, with its output kept for failures."""

    args: list[str]
    redis_prefix: str
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="spectr-proxy-test-"))
    )
    proc: subprocess.Popen | None = None
    # The folder holding the `proxy` package to run: an older release's in compatibility tests.
    source: Path = REPO_ROOT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def start(self) -> ProxyProcess:
        command = [
            sys.executable, "-m", "proxy", *self.args,
            "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
            "--admin-port", str(self.admin_port), "--redis-prefix", self.redis_prefix,
            "--confdir", str(self.workdir / "mitmproxy"), "--access-log", str(self.access_log),
        ]  # fmt: skip
        with open(self.workdir / "out.log", "wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=self.source, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port)
            wait_for_port(self.admin_port)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"spectr-proxy did not start:\n{self.output()}") from None
        return self

    def output(self) -> str:
        return (self.workdir / "out.log").read_text(errors="replace")

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.admin_port}/metrics", trust_env=False).text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def client(proxy: ProxyProcess, secret: str | None = None, **kwargs: Any) -> httpx.Client:
    """Return an HTTP client aimed at the proxy, optionally carrying a gateway key."""
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=proxy.url, headers=headers, trust_env=False, timeout=15, **kwargs)


def wait_until(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.02) -> float:
    """Poll until predicate() is true; return the seconds it took (a hang guard, not a check)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
    return time.monotonic() - start
