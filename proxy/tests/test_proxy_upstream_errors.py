"""Upstream failures answered by a real spectr-proxy: refused and silent upstreams, 502/504."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from proxy.tests.proxy_harness import client, free_port, new_key, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CHAT = "/v1/chat/completions"
HELLO = {"model": "llama", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """A port that accepts each connection, reads the request, then resets it unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            conn.recv(65536)  # the reachability probe sends nothing and gets b""
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(5)


def config(upstream_url: str, secret_hash: str, ok_url: str) -> dict:
    return {
        "version": 1,
        "gateway": {"hosts": ["llm.test"], "timeout_s": 0.5, "retries": 0},
        "pools": [
            # One pool each: a failed connect marks the replica down for its pool's next requests.
            {"name": "bad-gw", "replicas": [{"url": upstream_url, "id": "bad-gw"}]},
            {"name": "bad-web", "replicas": [{"url": upstream_url, "id": "bad-web"}]},
            {"name": "ok", "replicas": [{"url": ok_url, "id": "ok-1"}]},
        ],
        "routes": [
            {"name": "web", "hosts": ["web.test"], "pool": "bad-web", "timeout_s": 0.5,
             "retries": 0},
            {"name": "fine", "hosts": ["fine.test"], "pool": "ok"},
        ],
        "models": [
            {"name": "llama", "pool": "bad-gw"},
            {"name": "good", "pool": "ok"},
        ],
        "keys": [{"id": "k1", "sha256": secret_hash, "user": "ann", "models": ["*"]}],
    }  # fmt: skip


def access_log(proxy) -> list[dict]:
    return [json.loads(line) for line in proxy.access_log.read_text().splitlines()]


def assert_openai_error(reply, status: int, code: str) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert "mitmproxy" not in reply.headers.get("server", "")
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["type"] and error["message"]
    assert "param" in error
    assert "127.0.0.1" not in error["message"]  # no replica address leaks to clients
    return error


FAILURES = {
    "refused": (502, "upstream_unreachable", "upstream_error"),
    "reset": (502, "upstream_disconnected", "upstream_error"),
    "silent": (504, "upstream_timeout", "timeout"),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_failed_upstream_answers_in_openai_shape_and_proxy_keeps_serving(
    kind, upstream, start_proxy, silent_port, resetting_port, redis_client, redis_prefix
):
    ok = upstream("ok")
    # Nothing listens on a freed port: connections to it are refused.
    port = {"refused": free_port(), "reset": resetting_port, "silent": silent_port}[kind]
    status, code, reason = FAILURES[kind]
    secret, digest = new_key()
    proxy = start_proxy(config(f"http://127.0.0.1:{port}", digest, ok.url))

    with client(proxy, secret) as http:
        gateway = http.post(
            CHAT, json=HELLO, headers={"host": "llm.test", "x-request-id": "trace-gw-1"}
        )
        route = http.get("/page", headers={"host": "web.test", "x-request-id": "trace-web-1"})
        # The same client connection keeps working, for the gateway and for routes.
        after_gw = http.post(CHAT, json={**HELLO, "model": "good"}, headers={"host": "llm.test"})
        after_route = http.get("/page", headers={"host": "fine.test"})

    assert "llama" in assert_openai_error(gateway, status, code)["message"]
    assert_openai_error(route, status, code)
    assert gateway.headers["x-request-id"] == "trace-gw-1"
    assert route.headers["x-request-id"] == "trace-web-1"
    assert after_gw.status_code == 200 and after_gw.json()["object"] == "chat.completion"
    assert after_route.status_code == 200 and after_route.json()["replica"] == "ok"
    with client(proxy, secret) as fresh:  # and new client connections too
        assert fresh.get("/x", headers={"host": "fine.test"}).status_code == 200

    entries = {entry["request_id"]: entry for entry in access_log(proxy)}
    for request_id, target, replica in (
        ("trace-gw-1", "gateway", "bad-gw"),
        ("trace-web-1", "web", "bad-web"),
    ):
        entry = entries[request_id]
        assert (entry["status"], entry["error"], entry["target"]) == (status, code, target)
        assert entry["replica"] == replica
    samples = [line for line in proxy.metrics().splitlines() if line.startswith("spectr_proxy_")]
    for target, model in (("web", ""), ("gateway", "llama")):
        labels = (f'target="{target}"', f'model="{model}"')
        assert any(
            line.startswith("spectr_proxy_requests_total{")
            and f'status="{status}"' in line
            and all(label in line for label in labels)
            for line in samples
        )
        assert any(
            line.startswith("spectr_proxy_errors_total{")
            and f'reason="{reason}"' in line
            and all(label in line for label in labels)
            for line in samples
        )

    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) >= 2)
    records = {f["model"]: f for _, f in redis_client.xrange(stream)}
    assert records["llama"]["status"] == str(status)
    assert records["llama"]["x_request_id"] == "trace-gw-1"
    assert records["llama"]["total_tokens"] == "0"


def test_request_id_is_carried_to_upstream_echoed_and_logged(
    upstream, start_proxy, redis_client, redis_prefix
):
    ok = upstream("ok")
    secret, digest = new_key()
    proxy = start_proxy(config(ok.url, digest, ok.url))
    stream_body = {**HELLO, "model": "good", "stream": True}
    with client(proxy, secret) as http:
        offered = http.get("/a", headers={"host": "fine.test", "x-request-id": "op-42.retry_1"})
        made = http.get("/b", headers={"host": "fine.test"})
        refused = http.get("/c", headers={"host": "fine.test", "x-request-id": "bad id; x=1"})
        unauthorized = http.post(
            CHAT, json=HELLO, headers={"host": "llm.test", "authorization": "Bearer nope"}
        )
        with http.stream(
            "POST", CHAT, json=stream_body, headers={"host": "llm.test", "x-request-id": "sse-7"}
        ) as streamed:
            streamed.read()

    assert offered.headers["x-request-id"] == "op-42.retry_1"
    assert offered.json()["headers"]["x-request-id"] == "op-42.retry_1"  # what the upstream saw
    generated = made.headers["x-request-id"]
    assert len(generated) >= 32 and made.json()["headers"]["x-request-id"] == generated
    # An id that is not a short plain token is replaced, never passed on.
    assert refused.headers["x-request-id"] not in ("", "bad id; x=1")
    assert refused.json()["headers"]["x-request-id"] == refused.headers["x-request-id"]
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"]
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.headers["x-request-id"] == "sse-7"

    logged = [entry["request_id"] for entry in access_log(proxy)]
    assert {"op-42.retry_1", generated, "sse-7"} <= set(logged)
    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) >= 1)
    (_, record), *_ = redis_client.xrange(stream)
    assert record["x_request_id"] == "sse-7"
    assert record["request_id"] != "sse-7"  # the record's own key stays unique per request
