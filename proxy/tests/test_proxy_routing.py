"""Routing through a real spectr-proxy process to real upstream HTTP servers."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from proxy.tests.proxy_harness import client, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def pool(name: str, *servers, **extra) -> dict:
    return {"name": name, "replicas": [{"url": s.url, "id": s.name} for s in servers], **extra}


def test_routes_by_host_and_path_prefix_round_robin(upstream, start_proxy):
    a, b, c = upstream("a"), upstream("b"), upstream("c")
    proxy = start_proxy({
        "version": 1,
        "pools": [pool("web", a, b), pool("api", c)],
        "routes": [
            {"name": "web", "hosts": ["web.test"], "pool": "web"},
            {"name": "api", "hosts": ["web.test"], "path_prefix": "/api", "pool": "api",
             "strip_prefix": True},
        ],
    })  # fmt: skip
    with client(proxy) as http:
        web = [http.get("/page", headers={"host": "web.test"}) for _ in range(4)]
        api = http.get("/api/items?x=1", headers={"host": "web.test"})
        unknown = http.get("/page", headers={"host": "other.test"})
        near_miss = http.get("/apix", headers={"host": "web.test"})

    assert [r.json()["replica"] for r in web] == ["a", "b", "a", "b"]
    assert api.json()["replica"] == "c"
    assert api.json()["path"] == "/items?x=1"
    assert api.json()["headers"]["x-forwarded-host"] == "web.test"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "no_route"
    assert near_miss.json()["replica"] in ("a", "b")


def test_refused_connection_is_retried_on_another_replica(upstream, start_proxy):
    a, b = upstream("a"), upstream("b")
    proxy = start_proxy({"version": 1, "pools": [pool("web", a, b)],
                         "routes": [{"name": "web", "pool": "web"}]})  # fmt: skip
    a.stop()  # replica a dies: its port now refuses connections
    # A fresh client connection per request, so each one needs a new upstream connection.
    replies = []
    for _ in range(4):
        with client(proxy) as http:
            replies.append(http.get("/"))

    assert [r.status_code for r in replies] == [200] * 4
    assert {r.json()["replica"] for r in replies} == {"b"}
    assert 'spectr_proxy_replica_up{pool="web",replica="a"} 0.0' in proxy.metrics()


def test_failed_health_check_takes_replica_out_and_back(upstream, start_proxy):
    a, b = upstream("a"), upstream("b")
    check = {"path": "/health", "interval_s": 0.2, "timeout_s": 0.5}
    proxy = start_proxy({"version": 1, "pools": [pool("web", a, b, health_check=check)],
                         "routes": [{"name": "web", "pool": "web"}]})  # fmt: skip
    a.healthy = False
    with client(proxy) as http:
        wait_until(lambda: all(http.get("/").json()["replica"] == "b" for _ in range(4)))
        a.healthy = True
        wait_until(lambda: "a" in {http.get("/").json()["replica"] for _ in range(4)})


def test_no_healthy_replica_is_503(upstream, start_proxy):
    a = upstream("a")
    proxy = start_proxy(
        {
            "version": 1,
            "pools": [{"name": "web", "replicas": [{"url": a.url, "health": "unhealthy"}]}],
            "routes": [{"name": "web", "pool": "web"}],
        }
    )
    with client(proxy) as http:
        reply = http.get("/")
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "no_healthy_replica"


def test_route_timeout_cuts_a_slow_upstream(upstream, start_proxy):
    a = upstream("a")
    proxy = start_proxy({"version": 1, "pools": [pool("web", a)],
                         "routes": [{"name": "web", "pool": "web", "timeout_s": 0.3}]})  # fmt: skip
    with client(proxy) as http:
        slow = http.get("/slow?s=3")
        fast = http.get("/")
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "upstream_timeout"
    assert fast.status_code == 200
    log = [json.loads(line) for line in proxy.access_log.read_text().splitlines()]
    assert log[0]["error"] == "upstream_timeout"
    assert 'reason="timeout"' in proxy.metrics()


def test_sse_stream_is_passed_chunk_by_chunk(upstream, start_proxy):
    a = upstream("a", chunk_delay_s=0.05)
    a.stream_gate = threading.Event()
    # The gateway answers only llm.test, so /v1/ on other hosts is an ordinary route.
    proxy = start_proxy({"version": 1, "gateway": {"hosts": ["llm.test"]},
                         "pools": [pool("sse", a)], "routes": [{"name": "sse", "pool": "sse"}]})  # fmt: skip
    body = {"model": "m", "stream": True, "max_tokens": 4}
    arrivals: list[float] = []
    with client(proxy) as http, http.stream("POST", "/v1/chat/completions", json=body) as reply:
        lines = reply.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        arrivals.append(time.monotonic())
        # The upstream holds the rest of the stream until now: a buffering proxy never gets here.
        assert not a.stream_gate.is_set()
        a.stream_gate.set()
        rest = []
        for line in lines:
            if line.startswith("data:"):
                rest.append(line)
                arrivals.append(time.monotonic())
    assert "spectr" in first
    assert rest[-1] == "data: [DONE]"
    assert len(rest) == 4
    gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(arrivals)]
    print("seconds between chunks:", gaps)
