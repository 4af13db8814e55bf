"""The lean gateway path in a real spectr-proxy: one listening socket shared with mitmproxy.

Gateway requests are served by proxy/lean, everything else by mitmproxy, on the same port and
even on the same client connection; the upstreams are stand-in model servers (no real model
runs here) and, for a replica that drops kept-alive connections, a raw socket server.
"""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from proxy.tests.proxy_harness import client, new_key, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CHAT = "/v1/chat/completions"
HELLO = {"model": "llama", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


def document(model_url: str, route_url: str, digest: str, retries: int = 1) -> dict:
    return {
        "version": 1,
        "gateway": {"hosts": ["llm.test"], "retries": retries},
        "models": [{"name": "llama", "replicas": [{"url": model_url, "id": "model-1"}]}],
        "pools": [{"name": "web", "replicas": [{"url": route_url, "id": "web-1"}]}],
        "routes": [{"name": "web", "hosts": ["web.test"], "pool": "web"}],
        "keys": [{"id": "k1", "sha256": digest, "user": "ann"}],
    }


def access_log(proxy) -> list[dict]:
    return [json.loads(line) for line in proxy.access_log.read_text().splitlines()]


def post_chat(conn: http.client.HTTPConnection, secret: str, **headers: str) -> dict:
    body = json.dumps(HELLO)
    conn.request("POST", CHAT, body, {"Host": "llm.test", "Authorization": f"Bearer {secret}",
                                      "Content-Type": "application/json", **headers})  # fmt: skip
    reply = conn.getresponse()
    return {"status": reply.status, "headers": dict(reply.getheaders()), "body": reply.read()}


def test_one_connection_carries_gateway_and_route_requests_in_any_order(
    upstream, start_proxy, redis_client, redis_prefix
):
    model, web = upstream("model"), upstream("web")
    secret, digest = new_key()
    proxy = start_proxy(document(model.url, web.url, digest))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=15)
    first = post_chat(conn, secret, **{"X-Request-Id": "lean-1"})
    sock = conn.sock
    # A route's request on the same connection: from here mitmproxy serves the connection.
    conn.request("GET", "/page", headers={"Host": "web.test", "X-Request-Id": "route-1"})
    route = conn.getresponse()
    route_body = json.loads(route.read())
    second = post_chat(conn, secret, **{"X-Request-Id": "after-1"})
    assert conn.sock is sock  # one client connection throughout
    conn.close()

    assert [first["status"], route.status, second["status"]] == [200, 200, 200]
    assert first["headers"]["x-replica"] == second["headers"]["x-replica"] == "model"
    assert json.loads(first["body"])["usage"]["completion_tokens"] == 3
    assert route_body["replica"] == "web"
    assert route_body["headers"]["x-forwarded-host"] == "web.test"
    assert route_body["headers"]["x-forwarded-for"] == "127.0.0.1"
    entries = {e["request_id"]: e for e in access_log(proxy)}
    assert [(entries[i]["target"], entries[i]["status"]) for i in ("lean-1", "route-1", "after-1")]\
        == [("gateway", 200), ("web", 200), ("gateway", 200)]  # fmt: skip
    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) == 2)
    records = [fields for _, fields in redis_client.xrange(stream)]
    assert [r["x_request_id"] for r in records] == ["lean-1", "after-1"]
    assert all(r["total_tokens"] != "0" and r["status"] == "200" for r in records)


def read_response(stream) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length framed) from a socket's file."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", 0)))


def test_chunked_upload_with_expect_continue_and_pipelined_requests(upstream, start_proxy):
    model, web = upstream("model"), upstream("web")
    secret, digest = new_key()
    proxy = start_proxy(document(model.url, web.url, digest))
    body = json.dumps({**HELLO, "model": "llama", "max_tokens": 2}).encode()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as sock:
        stream = sock.makefile("rb")
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: llm.test\r\nAuthorization: Bearer %s\r\n"
            b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
            % (CHAT.encode(), secret.encode())
        )
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
        sock.sendall(
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
        )
        status, _, answer = read_response(stream)
        assert status == 200 and json.loads(answer)["usage"]["completion_tokens"] == 2
        # Two requests in one write: the answers come back in order on the same connection.
        one = b"POST %s HTTP/1.1\r\nHost: llm.test\r\nAuthorization: Bearer %s\r\n" % (
            CHAT.encode(), secret.encode())  # fmt: skip
        sock.sendall(
            one + b"X-Request-Id: p-1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            + one + b"X-Request-Id: p-2\r\nContent-Length: 2\r\n\r\n[]"
        )  # fmt: skip
        replies = [read_response(stream) for _ in range(2)]
    assert [(s, h["x-request-id"]) for s, h, _ in replies] == [(200, "p-1"), (400, "p-2")]
    # The replica got the body whole, framed by Content-Length, as any request from the proxy.
    assert model.bodies_seen[0] == {**HELLO, "max_tokens": 2}


class DroppingHandler(socketserver.StreamRequestHandler):
    """Answer the first request of a connection, keep it open, drop it at the second request."""

    server: DroppingServer

    def handle(self) -> None:
        self.server.connections += 1
        for answered in range(2):
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            self.rfile.read(length)
            if answered:  # closed unanswered, as servers closing idle connections race with it
                self.server.dropped += 1
                return
            usage = {"prompt_tokens": 1, "completion_tokens": 1}
            body = json.dumps({"choices": [], "usage": usage}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip


class DroppingServer(socketserver.ThreadingTCPServer):
    """A replica that drops kept-alive connections when they are used again."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), DroppingHandler)
        self.connections = self.dropped = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def dropping() -> Iterator[DroppingServer]:
    server = DroppingServer()
    yield server
    server.shutdown()
    server.server_close()


def test_a_kept_alive_connection_the_replica_dropped_is_sent_again_on_a_new_one(
    dropping, upstream, start_proxy
):
    web = upstream("web")
    secret, digest = new_key()
    proxy = start_proxy(document(dropping.url, web.url, digest, retries=0))
    with client(proxy, secret) as http_client:
        replies = [
            http_client.post(CHAT, json=HELLO, headers={"host": "llm.test"}) for _ in range(3)
        ]
    # No retry is configured, yet no answer failed: the request the replica dropped on a reused
    # connection went again on a new one, and the replica was never marked down.
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert dropping.dropped >= 1 and dropping.connections >= 2
    assert {e["status"] for e in access_log(proxy)} == {200}


@pytest.mark.parametrize("path", ["lean", "mitmproxy"])
def test_both_gateway_paths_answer_and_account_alike(path, upstream, start_proxy, redis_client,
                                                     redis_prefix):  # fmt: skip
    model, web = upstream("model", chunk_delay_s=0), upstream("web")
    secret, digest = new_key()
    proxy = start_proxy(document(model.url, web.url, digest), args=["--gateway-path", path])
    with client(proxy, secret) as http_client:
        gateway = {"host": "llm.test"}
        whole = http_client.post(CHAT, json=HELLO, headers=gateway)
        streamed = http_client.post(CHAT, json={**HELLO, "stream": True}, headers=gateway)
        refused = http_client.post(CHAT, json=HELLO, headers={**gateway, "authorization": "x"})
        routed = http_client.get("/", headers={"host": "web.test"})
    assert (whole.status_code, streamed.status_code, refused.status_code) == (200, 200, 401)
    assert streamed.text.rstrip().endswith("data: [DONE]") and "usage" not in streamed.text
    assert routed.json()["replica"] == "web"
    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) == 2)
    records = [fields for _, fields in redis_client.xrange(stream)]
    assert [(r["stream"], r["tokens_source"], r["completion_tokens"]) for r in records] == [
        ("0", "usage", "3"),
        ("1", "usage", "3"),
    ]
