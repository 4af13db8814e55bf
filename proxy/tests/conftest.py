"""Fixtures for spectr_proxy tests: real Redis, real stand-in upstreams, real proxy processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from proxy.tests.llm_standin import StandInServer
from proxy.tests.openai_surface import Surface, running_surface
from proxy.tests.proxy_harness import REDIS_URL, ProxyProcess, write_config


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test alone; every key under it is deleted afterwards."""
    prefix = f"spectr-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def upstream() -> Iterator[Callable[..., StandInServer]]:
    """Start stand-in servers on free ports; all are stopped afterwards."""
    started: list[StandInServer] = []

    def start(name: str, **kwargs: Any) -> StandInServer:
        server = StandInServer(name=name, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_proxy(tmp_path: Path, redis_prefix: str) -> Iterator[Callable[..., ProxyProcess]]:
    """Start spectr-proxy processes on a config file (or other arguments); all stop afterwards."""
    started: list[ProxyProcess] = []

    def start(
        document: dict[str, Any] | None = None, args: list[str] | None = None
    ) -> ProxyProcess:
        if document is not None:
            config_file = tmp_path / "proxy-config.json"
            write_config(config_file, document)
            args = ["--config-file", str(config_file), *(args or [])]
        proxy = ProxyProcess(
            args=[*(args or []), "--redis-url", REDIS_URL], redis_prefix=redis_prefix
        )
        started.append(proxy.start())
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="module")
def surface_module() -> Iterator[Surface]:
    """One proxy with stand-in model servers for a whole module (see openai_surface.py)."""
    yield from running_surface()


@pytest.fixture
def surface(surface_module: Surface) -> Iterator[Surface]:
    """The module's proxy; the openai clients a test opened are closed after it."""
    yield surface_module
    while surface_module.opened:
        surface_module.opened.pop().close()
