"""Fixtures for end-to-end tests: a real `spectr run` process with Redis, and its helpers.

The portal runs as a process of its own (embedded worker and ticker) because the pieces under
test talk to it over the network as they would in production: spectr-proxy fetches its config
document over HTTP, the agent on a test host is installed by its bootstrap, and usage comes back
from the proxy through Redis to the portal's periodic ingestion.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

SPECTR = str(Path(sys.executable).with_name("spectr"))
VENV_BIN = str(Path(sys.executable).parent)
REDIS_BASE = os.environ.get("SPECTR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# A database of its own on the shared Redis: the ticker's locks (`spectr:ticker:<job>`) are not
# prefixed, so another portal on database 0 could otherwise skip this portal's periodic jobs.
REDIS_DB = 11
TERMINAL = ("succeeded", "failed", "cancelled")


def redis_url(db: int = REDIS_DB) -> str:
    return REDIS_BASE.rsplit("/", 1)[0] + f"/{db}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class SpectrProcess:
    """A `spectr run` process, an admin API client, and the Redis names it uses."""

    url: str
    api: httpx.Client
    instance: Path
    process: subprocess.Popen
    env: dict[str, str]
    redis_url: str
    redis_prefix: str

    def log_tail(self, lines: int = 60) -> str:
        text = (self.instance / "portal.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cli(self, *args: str, stdin_env: dict[str, str] | None = None) -> str:
        """Run a `spectr` command against this portal's instance; return its stdout."""
        done = subprocess.run(
            [SPECTR, *args], env={**self.env, **(stdin_env or {})}, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def log_of(self, operation_id: str) -> list[dict[str, Any]]:
        """Every line of an operation's log, paging through it."""
        lines: list[dict[str, Any]] = []
        while True:
            page = self.api.get(
                f"/api/v1/operations/{operation_id}/log",
                params={"after": lines[-1]["id"] if lines else 0, "limit": 1000},
            ).json()["lines"]
            lines += page
            if len(page) < 1000:
                return lines

    def finished(self, accepted: httpx.Response | str, timeout: float = 900) -> dict[str, Any]:
        """Wait for an operation to end; return it with its log messages under "log"."""
        if isinstance(accepted, httpx.Response):
            assert accepted.status_code == 202, accepted.text
            operation_id = accepted.json()["id"]
        else:
            operation_id = accepted

        def ended() -> dict[str, Any] | None:
            operation = self.api.get(f"/api/v1/operations/{operation_id}").json()
            return operation if operation["state"] in TERMINAL else None

        operation = wait_for(ended, timeout, f"operation {operation_id}", interval=0.5)
        operation["log_lines"] = self.log_of(operation_id)
        operation["log"] = [line["message"] for line in operation["log_lines"]]
        return operation

    def succeeded(self, accepted: httpx.Response | str, timeout: float = 900) -> dict[str, Any]:
        operation = self.finished(accepted, timeout)
        assert operation["state"] == "succeeded", (
            f"{operation['kind']} {operation['state']}: {operation['error']}\n"
            + "\n".join(operation["log"][-30:])
            + "\n--- portal log ---\n"
            + self.log_tail()
        )
        return operation


@pytest.fixture
def spectr_process(tmp_path: Path) -> Iterator[SpectrProcess]:
    """A real portal on SQLite, its queue and the gateway's usage stream on Redis."""
    instance = tmp_path / "instance"
    instance.mkdir()
    unique = uuid.uuid4().hex[:10]
    prefix, queue = f"spectr-test-{unique}:", f"spectr-test-{unique}"
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "SPECTR_INSTANCE_PATH": str(instance),
        "SPECTR_ADMIN_PASSWORD": "correct horse battery",
        "SPECTR_REDIS_URL": redis_url(),
        "SPECTR_EMBEDDED_WORKER": "true",
        "SPECTR_QUEUE_NAME": queue,
        "SPECTR_PROXY_REDIS_PREFIX": prefix,
        "SPECTR_MODELS_DIR": str(tmp_path / "node-models"),
        "SPECTR_OPERATION_RETRY_BASE_SECONDS": "0.5",
        "SPECTR_LOG_LEVEL": "WARNING",
        "HOME": str(tmp_path),
    }
    env.pop("SPECTR_DATABASE_URL", None)
    subprocess.run([SPECTR, "init"], env=env, check=True, capture_output=True, timeout=120)
    token = subprocess.run(
        [SPECTR, "token", "create", "admin"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    log = open(instance / "portal.log", "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [SPECTR, "run", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False
    )
    running = SpectrProcess(url, api, instance, process, env, redis_url(), prefix)
    try:
        wait_for(lambda: _answers(api), 60, "the portal to answer")
        yield running
    finally:
        api.close()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        _forget_redis_keys(prefix, queue)


def _answers(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _forget_redis_keys(*prefixes: str) -> None:
    client = redis.Redis.from_url(redis_url())
    try:
        for prefix in prefixes:
            keys = [
                key
                for pattern in (f"{prefix}*", f"*.{prefix}*", f"*.{prefix}")
                for key in client.scan_iter(match=pattern, count=1000)
            ]
            if keys:
                client.delete(*keys)
    finally:
        client.close()
