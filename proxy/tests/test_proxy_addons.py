"""Addon logic in mitmproxy's test context (taddons), without sockets."""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import replace
from types import SimpleNamespace

import pytest
from mitmproxy.test import taddons, tflow, tutils

from proxy.addons.auth import GatewayAuth, bearer_token
from proxy.addons.limits import Limits
from proxy.addons.models import GatewayModels
from proxy.addons.routing import Routing
from proxy.balancer import Balancer
from proxy.config import Pool, Replica, parse_config
from proxy.ratelimit import RateLimiter
from proxy.resp import RespClient
from proxy.state import GATEWAY, TARGET, ProxyState

SECRET = "sk-spectr-unit"
DIGEST = hashlib.sha256(SECRET.encode()).hexdigest()
OLD_SECRET = "sk-spectr-expired"


def state() -> ProxyState:
    return ProxyState(parse_config({
        "version": 1,
        "gateway": {"hosts": ["llm.test"]},
        "pools": [{"name": "web", "replicas": [{"url": "http://10.0.0.1:81"}, {"url": "http://10.0.0.2:82"}]},
                  {"name": "dark", "replicas": [{"url": "http://10.0.0.9:80", "health": "unhealthy"}]}],
        "routes": [{"name": "web", "hosts": ["web.test"], "pool": "web"},
                   {"name": "api", "hosts": ["web.test"], "path_prefix": "/api/", "pool": "web",
                    "strip_prefix": True},
                   {"name": "dark", "hosts": ["dark.test"], "pool": "dark"}],
        "models": [{"name": "llama", "aliases": ["l3"], "upstream_model": "llama-3", "pool": "web"},
                   {"name": "other", "pool": "web"}],
        "keys": [{"id": "k1", "sha256": DIGEST, "user": "ann", "models": ["llama"]},
                 {"id": "old", "sha256": hashlib.sha256(OLD_SECRET.encode()).hexdigest(), "expires_at": "2001-01-01T00:00:00+00:00"}],
    }))  # fmt: skip


def flow(
    path: str,
    host: str = "llm.test",
    method: str = "POST",
    body: object = None,
    secret: str | None = SECRET,
):
    headers = [(b"host", host.encode())]
    if secret:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    content = json.dumps(body).encode() if body is not None else b""
    request = tutils.treq(
        method=method.encode(), path=path.encode(), headers=headers, content=content
    )
    return tflow.tflow(req=request)


def error_code(f) -> tuple[int, str]:
    return f.response.status_code, json.loads(f.response.content)["error"]["code"]


def run_gateway(s: ProxyState, f) -> None:
    auth, models = GatewayAuth(s), GatewayModels(s)
    with taddons.context(auth, models):
        auth.request(f)
        models.request(f)


@pytest.mark.anyio
async def test_gateway_accepts_known_key_and_never_forwards_it():
    s, f = state(), flow("/v1/chat/completions", body={"model": "l3"})
    run_gateway(s, f)
    gateway = f.metadata[GATEWAY]
    assert f.response is None
    assert (gateway.key.id, gateway.model.name) == ("k1", "llama")
    assert "authorization" not in f.request.headers
    assert json.loads(f.request.content)["model"] == "llama-3"  # alias -> upstream name


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (
            flow("/v1/chat/completions", body={"model": "llama"}, secret=None),
            (401, "missing_api_key"),
        ),
        (
            flow("/v1/chat/completions", body={"model": "llama"}, secret="sk-nope"),
            (401, "invalid_api_key"),
        ),
        (flow("/v1/embeddings", body={"model": "other"}), (403, "model_not_allowed")),
        (flow("/v1/completions", body={"model": "gpt-5"}), (404, "model_not_found")),
        (flow("/v1/completions", body=["model"]), (400, "invalid_request")),
        (flow("/v1/completions", method="GET"), (405, "method_not_allowed")),
        (flow("/v1/audio"), (404, "unknown_endpoint")),
    ],
)
@pytest.mark.anyio
async def test_gateway_refusals(f, expected):
    run_gateway(state(), f)
    assert error_code(f) == expected
    assert f.response.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_expired_key_is_refused():
    f = flow("/v1/models", method="GET", secret=OLD_SECRET)
    run_gateway(state(), f)
    assert error_code(f) == (401, "expired_api_key")


@pytest.mark.anyio
async def test_model_list_shows_only_allowed_models_and_aliases():
    f = flow("/v1/models", method="GET")
    run_gateway(state(), f)
    assert [m["id"] for m in json.loads(f.response.content)["data"]] == ["llama", "l3"]


@pytest.mark.anyio
async def test_other_hosts_are_not_the_gateway():
    f = flow("/v1/chat/completions", host="web.test", secret=None)
    run_gateway(state(), f)
    assert f.response is None and GATEWAY not in f.metadata


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc ") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") == ""
    assert bearer_token("") == ""


@pytest.mark.anyio
async def test_limits_fail_open_when_redis_is_unreachable():
    s = state()
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    s.config.keys_by_hash[DIGEST] = replace(s.config.keys_by_hash[DIGEST], rpm=1)
    limits = Limits(RateLimiter(RespClient(url), "unit:"))
    f = flow("/v1/chat/completions", body={"model": "llama"})
    run_gateway(s, f)
    with taddons.context(limits):
        check = limits.request(f)
        assert check is not None
        await check
    assert f.response is None


@pytest.mark.anyio
async def test_requests_without_limits_never_wait_on_redis():
    s = state()
    limits = Limits(RateLimiter(RespClient("redis://127.0.0.1:1/0"), "unit:"))
    f = flow("/v1/chat/completions", body={"model": "llama"})
    run_gateway(s, f)
    with taddons.context(limits):
        assert limits.request(f) is None


@pytest.mark.anyio
async def test_routing_picks_replicas_in_turn_and_strips_prefix():
    s = state()
    routing = Routing(s)
    with taddons.context(routing):
        flows = [flow("/page", host="web.test", method="GET", secret=None) for _ in range(3)]
        api = flow("/api/items", host="web.test", method="GET", secret=None)
        for f in [*flows, api]:
            routing.request(f)
    assert [(f.request.host, f.request.port) for f in flows] == [
        ("10.0.0.1", 81),
        ("10.0.0.2", 82),
        ("10.0.0.1", 81),
    ]
    assert flows[0].request.host_header == "10.0.0.1:81"
    assert flows[0].request.headers["x-forwarded-host"] == "web.test"
    assert (api.metadata[TARGET].label, api.request.path) == ("api", "/items")
    for f in [*flows, api]:
        routing.response(f)
        routing.response(f)  # a second end event must not release twice
    assert all(s.balancer.state(r).inflight == 0 for r in s.config.pools["web"].replicas)


@pytest.mark.anyio
async def test_routing_refusals():
    routing = Routing(state())
    with taddons.context(routing):
        unknown = flow("/", host="nowhere.test", method="GET", secret=None)
        dark = flow("/", host="dark.test", method="GET", secret=None)
        routing.request(unknown)
        routing.request(dark)
    assert error_code(unknown) == (404, "no_route")
    assert error_code(dark) == (503, "no_healthy_replica")


def test_least_connections_prefers_idle_replica_and_skips_down_ones():
    a, b, c = (Replica(id=n, scheme="http", host=n, port=80) for n in "abc")
    pool = Pool(name="p", replicas=(a, b, c), strategy="least_connections")
    balancer = Balancer()
    balancer.acquire(a)
    balancer.acquire(b)
    assert balancer.choose(pool) is c
    balancer.mark_down(c, 60)
    balancer.acquire(a)
    assert balancer.choose(pool) is b
    balancer.mark_check(c, True)  # a passing health check brings it back at once
    assert balancer.choose(pool) is c
    balancer.mark_check(a, False)
    balancer.mark_check(b, False)
    balancer.mark_check(c, False)
    assert balancer.choose(pool) is None


def test_breaker_lets_one_probe_through_and_doubles_its_period_on_failure(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("proxy.balancer.time", SimpleNamespace(monotonic=lambda: clock[0]))
    a = Replica(id="a", scheme="http", host="a", port=80)
    pool = Pool(name="p", replicas=(a,))
    balancer = Balancer()
    assert balancer.acquire(a) is False  # closed: an ordinary request
    balancer.mark_down(a, 2)
    balancer.mark_down(a, 2)  # a second failure while open changes nothing
    assert balancer.choose(pool) is None
    assert balancer.retry_after_s(pool) == 2
    clock[0] += 1.5
    assert balancer.retry_after_s(pool) == 1  # rounded up, never 0

    periods = []
    for _ in range(7):
        clock[0] += 100
        assert balancer.choose(pool) is a  # half-open
        assert balancer.acquire(a) is True  # this request is the probe
        assert balancer.choose(pool) is None  # one probe at a time
        balancer.mark_down(a, 2, probe=True)  # the probe failed
        periods.append(balancer.retry_after_s(pool))
    assert periods == [4, 8, 16, 32, 60, 60, 60]

    clock[0] += 100
    assert balancer.choose(pool) is a and balancer.acquire(a) is True
    balancer.probe_done(a, None)  # the client left: the probe told nothing, another may go
    assert balancer.choose(pool) is a and balancer.acquire(a) is True
    balancer.probe_done(a, True)  # closed
    assert balancer.choose(pool) is a and balancer.acquire(a) is False
    balancer.mark_down(a, 2)  # a later failure opens it for the base period again
    assert balancer.retry_after_s(pool) == 2
    balancer.mark_check(a, True)  # a passing health check makes it half-open at once
    assert balancer.choose(pool) is a and balancer.acquire(a) is True


def test_down_for_zero_never_takes_a_replica_out():
    a = Replica(id="a", scheme="http", host="a", port=80)
    balancer = Balancer()
    balancer.mark_down(a, 0)
    assert balancer.choose(Pool(name="p", replicas=(a,))) is a


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_removing_a_health_check_clears_its_verdict():
    s = state()
    replica = s.config.pools["web"].replicas[0]
    s.balancer.mark_check(replica, False)
    assert (
        s.balancer.choose(s.config.pools["web"], exclude=[s.config.pools["web"].replicas[1].id])
        is None
    )
    s.apply(s.config)  # the web pool declares no health_check
    assert (
        s.balancer.choose(s.config.pools["web"], exclude=[s.config.pools["web"].replicas[1].id])
        is replica
    )


def test_request_id_replaces_duplicates_and_the_upstream_own_id():
    from proxy.addons.request_id import RequestIds
    from proxy.state import REQUEST_ID

    addon = RequestIds()
    twice = flow("/x", host="web.test")
    twice.request.headers.add("X-Request-Id", "a")
    twice.request.headers.add("X-Request-Id", "b")
    addon.request(twice)
    assert twice.request.headers.get_all("x-request-id") == [twice.id]

    kept = flow("/x", host="web.test")
    kept.request.headers["X-Request-Id"] = "op-1"
    addon.request(kept)
    kept.response = tutils.tresp(headers=[(b"X-Request-Id", b"upstream-9")])
    addon.responseheaders(kept)
    addon.response(kept)
    assert kept.metadata[REQUEST_ID] == "op-1"
    assert kept.response.headers.get_all("x-request-id") == ["op-1"]
