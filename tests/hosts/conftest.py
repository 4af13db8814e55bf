"""Fixtures for the hosts context: the portal fixtures, test hosts, and a real portal process."""

from __future__ import annotations

import contextlib
import os
import socket
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

from tests.browser.conftest import (  # noqa: F401 - for test_hosts_browser.py
    browser_context,
    chromium_path,
    page,
    playwright_driver,
    portal,
)
from tests.portal.conftest import (  # noqa: F401 - fixtures shared with the portal's tests
    any_db_app,
    api_as,
    app,
    client,
    create_user,
    postgres_database,
    postgres_migrated,
    sqlite_template,
)
from tests.support.docker_objects import made  # noqa: F401 - Docker objects a test makes
from tests.support.fixtures import make_test_host  # noqa: F401

SPECTR = str(Path(sys.executable).with_name("spectr"))
BUILD_BASE = Path(__file__).parents[1] / "images" / "build-base.sh"
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def run_container() -> Iterator[Callable[..., Any]]:
    """run(script, start=True, **options): a container of the test image running `sh -c
    script` on this machine's engine (created only with start=False), named
    spectr-test-run-<random>; every one is removed at the end."""
    import docker
    import docker.errors

    built = subprocess.run([str(BUILD_BASE)], capture_output=True, text=True, check=True)
    engine = docker.from_env()
    started: list[Any] = []

    def run(script: str, start: bool = True, **options: Any) -> Any:
        make = engine.containers.run if start else engine.containers.create
        container = make(
            built.stdout.strip(), ["sh", "-c", script], detach=True,
            name=f"spectr-test-run-{uuid.uuid4().hex[:6]}", **options,
        )  # fmt: skip
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    engine.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):  # type: ignore[no-untyped-def]
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
class PortalProcess:
    """A `spectr run` process (portal + embedded worker + ticker) and an admin API client."""

    url: str
    api: httpx.Client
    instance: Path
    process: subprocess.Popen
    env: dict[str, str]

    def log_tail(self, lines: int = 60) -> str:
        text = (self.instance / "portal.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def portal_env(tmp_path: Path, instance: Path, **settings: str) -> dict[str, str]:
    """The environment of a portal process on `instance`: SQLite, embedded worker, settings."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "SPECTR_INSTANCE_PATH": str(instance),
        "SPECTR_ADMIN_PASSWORD": "correct horse battery",
        "SPECTR_OPERATION_RETRY_BASE_SECONDS": "0.5",
        "SPECTR_LOG_LEVEL": "WARNING",
        "HOME": str(tmp_path),
    }
    for name in ("SPECTR_REDIS_URL", "SPECTR_DATABASE_URL"):
        env.pop(name, None)
    return {**env, **settings}


@contextlib.contextmanager
def running_portal(instance: Path, env: dict[str, str]) -> Iterator[PortalProcess]:
    """`spectr init`, an admin token, then `spectr run` on a free port until the block ends."""
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
    try:
        wait_for(lambda: _answers(api), 60, "the portal to answer")
        yield PortalProcess(url, api, instance, process, env)
    finally:
        api.close()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def portal_process(tmp_path: Path) -> Iterator[PortalProcess]:
    """A real portal on SQLite with its embedded worker, reached over HTTP on 127.0.0.1."""
    instance = tmp_path / "instance"
    instance.mkdir()
    with running_portal(instance, portal_env(tmp_path, instance)) as running:
        yield running


def _answers(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
