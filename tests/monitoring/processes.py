"""Real processes for the monitoring tests: `spectr run` and Debian's Prometheus on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agent.tests.harness import free_port

SPECTR = Path(sys.executable).parent / "spectr"


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, what: str, log: Path | None = None
) -> Any:
    """Poll until `predicate` returns something truthy; fail with the log when it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            found = predicate()
            if found:
                return found
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what} did not happen within {timeout_s} s\n{tail}")


class PortalProcess:
    """`spectr init` + `spectr run` on a fresh embedded instance (SQLite, in-process worker)."""

    def __init__(self, instance: Path, **env: str) -> None:
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = instance / "portal.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
        self.env.update(SPECTR_INSTANCE_PATH=str(instance), **env)
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, **env: str) -> str:
        """Run a `spectr` command on this instance and return its standard output."""
        done = subprocess.run(
            [str(SPECTR), *args], env={**self.env, **env}, cwd=self.instance,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"spectr {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    def start(self) -> PortalProcess:
        """Initialise the instance, then serve it."""
        self.cli("init")
        return self.serve()

    def serve(self) -> PortalProcess:
        """Run `spectr run` on an initialised instance and wait until it answers."""
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(SPECTR), "run", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=self.instance, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_for(
            lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200,
            60, "portal /healthz", self.log,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The portal runs in a session of its own: signal only that group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class PrometheusProcess:
    """Debian's prometheus binary with a config file, a throw-away TSDB and a 127.0.0.1 port."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusProcess:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.config.parent / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                cwd=self.config.parent, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(
            lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
            60, "prometheus ready", self.log,
        )  # fmt: skip
        return self

    def query(self, promql: str) -> dict[str, Any]:
        """Run an instant query through the HTTP API and return its `data`."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", f"{promql}: {body}"
        return body["data"]

    def active_targets(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=10)
        return answer.json()["data"]["activeTargets"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
