"""Usage records while Redis is away: a real spectr-proxy, a private redis-server stopped and
started again, and a proxy killed while records wait on disk."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from proxy.tests.proxy_harness import (
    ProxyProcess,
    client,
    new_key,
    wait_until,
    write_config,
)
from proxy.tests.redis_server import RedisServer
from proxy.tests.test_proxy_gateway import CHAT, HELLO, gateway_config, key

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def pending(proxy: ProxyProcess) -> dict[str, float]:
    found = re.findall(r'spectr_proxy_usage_pending\{where="(\w+)"\} (\S+)', proxy.metrics())
    return {where: float(value) for where, value in found}


def send(proxy: ProxyProcess, secret: str, ids: list[str]) -> None:
    with client(proxy, secret) as http:
        for i, request_id in enumerate(ids):
            body = {**HELLO, "max_tokens": 2, "stream": i % 2 == 1}
            reply = http.post(CHAT, json=body, headers={"x-request-id": request_id})
            assert reply.status_code == 200  # limits fail open while Redis is away


def records(server: RedisServer, prefix: str, count: int) -> list[str]:
    client_ = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        wait_until(lambda: client_.xlen(f"{prefix}usage") >= count, timeout_s=15)
        return [f["x_request_id"] for _, f in client_.xrange(f"{prefix}usage")]
    finally:
        client_.close()


def test_usage_made_while_redis_is_away_arrives_once_when_it_returns(
    upstream, private_redis, tmp_path: Path, redis_prefix
):
    a = upstream("a", chunk_delay_s=0)
    secret, digest = new_key()
    write_config(tmp_path / "c.json", gateway_config([a], [key("k1", digest, tpm=100_000)]))
    args = ["--config-file", str(tmp_path / "c.json"), "--redis-url", private_redis.url,
            "--usage-queue", "3"]  # fmt: skip
    proxy = ProxyProcess(args=args, redis_prefix=redis_prefix).start()
    try:
        private_redis.stop()
        away = [f"away-{i}" for i in range(12)]
        send(proxy, secret, away)
        # The writer's retry found Redis gone: everything waits on disk, memory is empty.
        wait_until(lambda: pending(proxy) == {"memory": 0.0, "disk": 12.0}, timeout_s=5)
        private_redis.start()
        assert records(private_redis, redis_prefix, 12) == away  # in order, each once
        wait_until(lambda: pending(proxy) == {"memory": 0.0, "disk": 0.0}, timeout_s=5)
        assert "spectr_proxy_usage_dropped_total 0.0" in proxy.metrics()
        assert records(private_redis, redis_prefix, 12) == away  # and nothing came twice

        # Killed while records wait on disk: the next proxy on the same folder sends them.
        private_redis.stop()
        lost_with_proxy = [f"killed-{i}" for i in range(4)]
        send(proxy, secret, lost_with_proxy)
        wait_until(lambda: pending(proxy)["disk"] == 4.0, timeout_s=5)
        assert proxy.proc is not None
        proxy.proc.kill()
        proxy.proc.wait()
        private_redis.start()  # empty again: it keeps nothing on disk
        proxy = ProxyProcess(args=args, redis_prefix=redis_prefix, workdir=proxy.workdir).start()
        assert records(private_redis, redis_prefix, 4) == lost_with_proxy
    finally:
        proxy.stop()
