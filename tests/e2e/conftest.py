"""Fixtures for end-to-end tests: a real `spectr run` process with Redis, and its helpers.

The portal runs as a process of its own (embedded worker and ticker) because the pieces under
test talk to it over the network as they would in production: spectr-proxy fetches its config
document over HTTP, the agent on a test host is installed by its bootstrap, and usage comes back
from the proxy through Redis to the portal's periodic ingestion.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.hosts.conftest import SPECTR, PortalProcess, portal_env, running_portal, wait_for

REDIS_BASE = os.environ.get("SPECTR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# A database of its own on the shared Redis, and a queue name and prefix of its own in it: the
# other tests' portals and workers on database 0 never see this one's keys.
REDIS_DB = 11
TERMINAL = ("succeeded", "failed", "cancelled")


def redis_url(db: int = REDIS_DB) -> str:
    return REDIS_BASE.rsplit("/", 1)[0] + f"/{db}"


@dataclass
class SpectrProcess(PortalProcess):
    """A `spectr run` process with Redis (queue, usage stream) and operation helpers."""

    redis_url: str = ""
    redis_prefix: str = ""

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
    env = portal_env(
        tmp_path, instance, SPECTR_REDIS_URL=redis_url(), SPECTR_EMBEDDED_WORKER="true",
        SPECTR_QUEUE_NAME=queue, SPECTR_PROXY_REDIS_PREFIX=prefix,
        SPECTR_MODELS_DIR=str(tmp_path / "node-models"),
    )  # fmt: skip
    try:
        with running_portal(instance, env) as portal:
            yield SpectrProcess(**vars(portal), redis_url=redis_url(), redis_prefix=prefix)
    finally:
        _forget_redis_keys(prefix, queue)


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
