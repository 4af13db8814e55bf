"""One spectr-proxy, three stand-in model servers and three keys, shared by the tests of the
gateway's OpenAI surface (test_proxy_openai_surface.py, test_proxy_openai_files_and_refusals.py).

One proxy serves a whole test module (starting one per test would cost ~2 s each on this 2-core
machine); every call carries its own X-Request-Id, which the usage record, the access log and
the stand-in's log of upstream requests all hold, so tests find their own traffic and stay
independent of each other's order. The model servers are stand-ins (tests/proxy/llm_standin.py):
no real runtime can run here.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from openai import AsyncOpenAI, OpenAI

from proxy.tests.llm_standin import StandInServer
from proxy.tests.proxy_harness import REDIS_URL, ProxyProcess, new_key, wait_until, write_config


@dataclass
class Surface:
    """The running proxy and model servers, the keys' secrets, and clients made for them."""

    proxy: ProxyProcess
    a: StandInServer  # serves every endpoint
    b: StandInServer  # the second replica of the "store" model
    bare: StandInServer  # a runtime that serves chat only
    prefix: str
    secrets: dict[str, str]
    opened: list[OpenAI] = field(default_factory=list)  # closed after each test

    def client(self, key_id: str = "main", **options: Any) -> OpenAI:
        options = {"max_retries": 0, **options}  # tests see each answer as it came
        client = OpenAI(
            base_url=f"{self.proxy.url}/v1", api_key=self.secrets[key_id],
            http_client=httpx.Client(trust_env=False), **options,
        )  # fmt: skip
        self.opened.append(client)
        return client

    def async_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=f"{self.proxy.url}/v1", api_key=self.secrets["main"],
            http_client=httpx.AsyncClient(trust_env=False), max_retries=0,
        )  # fmt: skip

    def http(self, key_id: str = "main") -> httpx.Client:
        headers = {"authorization": f"Bearer {self.secrets[key_id]}"}
        return httpx.Client(base_url=self.proxy.url, headers=headers, trust_env=False, timeout=15)


def surface_config(a: StandInServer, b: StandInServer, bare: StandInServer, digests: dict) -> dict:
    models = [
        {"name": "llama", "aliases": ["l3", "meta/llama-3"], "upstream_model": "llama-3-8b",
         "replicas": [{"url": a.url, "id": "a"}]},
        {"name": "whisper", "replicas": [{"url": a.url, "id": "a"}]},  # upstream name = its name
        {"name": "store", "replicas": [{"url": a.url, "id": "a"}, {"url": b.url, "id": "b"}],
         "strategy": "round_robin"},
        {"name": "bare-model", "replicas": [{"url": bare.url, "id": "bare"}]},
        {"name": "secret-model", "replicas": [{"url": a.url, "id": "a"}]},
    ]  # fmt: skip
    keys = [
        {"id": "main", "sha256": digests["main"], "user": "user-main",
         "models": ["llama", "whisper", "store", "bare-model"]},
        {"id": "tpm", "sha256": digests["tpm"], "user": "user-tpm", "models": ["llama"], "tpm": 10},
        # May use one model only: requests that name none use it.
        {"id": "solo", "sha256": digests["solo"], "user": "user-solo", "models": ["llama"]},
    ]  # fmt: skip
    return {"version": 1, "etag": "surface", "models": models, "keys": keys}


def running_surface() -> Iterator[Surface]:
    """Start the stand-ins and the proxy; stop them and drop the Redis keys afterwards."""
    a, b, bare = (StandInServer(name=name).start() for name in ("a", "b", "bare"))
    for server in (a, b, bare):
        server.keep_requests = True
    bare.unserved = {"/v1/audio/speech", "/v1/responses"}
    secrets, digests = {}, {}
    for key_id in ("main", "tpm", "solo"):
        secrets[key_id], digests[key_id] = new_key()
    prefix = f"spectr-test-{uuid.uuid4().hex[:12]}:"
    folder = Path(tempfile.mkdtemp(prefix="spectr-surface-"))
    write_config(folder / "proxy.json", surface_config(a, b, bare, digests))
    proxy = ProxyProcess(
        args=["--config-file", str(folder / "proxy.json"), "--redis-url", REDIS_URL],
        redis_prefix=prefix,
    ).start()
    try:
        yield Surface(proxy, a, b, bare, prefix, secrets)
    finally:
        proxy.stop()
        for server in (a, b, bare):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def call_id() -> str:
    return f"surface-{uuid.uuid4().hex[:16]}"


def tagged(request_id: str) -> dict[str, Any]:
    """Options of an openai call that carry this request id."""
    return {"extra_headers": {"X-Request-Id": request_id}}


def record(redis_client: redis.Redis, surface: Surface, request_id: str) -> dict[str, str]:
    """Return the usage record of one request, once the proxy wrote it."""
    found: list[dict[str, str]] = []

    def written() -> bool:
        entries = redis_client.xrange(f"{surface.prefix}usage")
        found[:] = [f for _, f in entries if f["x_request_id"] == request_id]  # type: ignore[index]
        return bool(found)

    wait_until(written)
    [only] = found
    return only


def upstream_request(server: StandInServer, request_id: str) -> tuple[str, dict[str, str], bytes]:
    """Return (path, headers in lower case, body) of the request a replica got for this id."""
    seen = [
        (path, {k.lower(): v for k, v in headers.items()}, body)
        for _, path, headers, body in server.requests_seen
        if headers.get("x-request-id", headers.get("X-Request-Id")) == request_id
    ]
    [only] = seen
    return only


def tokens(entry: dict[str, str]) -> tuple[str, str, str, str, str]:
    return (
        entry["endpoint"], entry["status"], entry["prompt_tokens"], entry["completion_tokens"],
        entry["tokens_source"],
    )  # fmt: skip
