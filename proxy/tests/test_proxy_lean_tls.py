"""TLS ended on the lean path: a gateway host with a certificate that no route names is served
by proxy/lean over TLS, a route's host still by mitmproxy, on the same port.

The model server is the stand-in (no real model runs here); the clients are the openai library
and raw TLS sockets.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import httpx
import openai
import pytest

from proxy.config import parse_config
from proxy.lean.tls import NeedMore, client_hello_sni, lean_tls_host
from proxy.tests.proxy_harness import new_key, wait_until
from proxy.tests.tls_support import https_get, self_signed

pytestmark = [pytest.mark.slow, pytest.mark.redis]

HELLO = {"model": "llama", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


def client_hello(server_name: str | None) -> bytes:
    """The first flight of a real TLS client (Python's ssl) offering `server_name`."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    context.check_hostname = False
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_server_name_is_read_from_a_client_hello() -> None:
    hello = client_hello("LLM.test")
    assert client_hello_sni(hello) == "llm.test"
    assert client_hello_sni(client_hello(None)) is None
    with pytest.raises(NeedMore):
        client_hello_sni(hello[:40])
    assert client_hello_sni(b"GET / HTTP/1.1\r\n") is None
    server_hello = bytearray(hello)
    server_hello[5] = 0x02  # another handshake message than a ClientHello
    assert client_hello_sni(bytes(server_hello)) is None
    too_long = bytearray(hello)
    too_long[3:5] = (20000).to_bytes(2, "big")  # longer than a TLS record may be
    assert client_hello_sni(bytes(too_long)) is None


def test_which_hosts_the_lean_path_ends_tls_for(tmp_path: Path) -> None:
    cert = {"cert_file": "c.pem", "key_file": "k.pem"}
    config = parse_config({
        "version": 1,
        "gateway": {"hosts": ["llm.test"], "tls": cert},
        "pools": [{"name": "web", "replicas": [{"url": "http://127.0.0.1:9"}]}],
        "routes": [{"name": "web", "hosts": ["web.test"], "pool": "web"}],
    })  # fmt: skip
    assert lean_tls_host(config, "llm.test")
    assert not lean_tls_host(config, "web.test")  # a route's: mitmproxy serves it
    assert not lean_tls_host(config, None)  # no SNI
    catch_all = parse_config({
        "version": 1,
        "gateway": {"hosts": ["llm.test"], "tls": cert},
        "pools": [{"name": "web", "replicas": [{"url": "http://127.0.0.1:9"}]}],
        "routes": [{"name": "any", "pool": "web"}],
    })  # fmt: skip
    assert not lean_tls_host(catch_all, "llm.test")  # its other paths may be a route's
    no_cert = parse_config({"version": 1, "gateway": {"hosts": ["llm.test"]}})
    assert not lean_tls_host(no_cert, "llm.test")


@pytest.fixture
def tls_proxy(upstream, start_proxy, tmp_path):
    gateway_cert, route_cert = self_signed("llm.test", tmp_path), self_signed("web.test", tmp_path)
    model, web = upstream("model"), upstream("web")
    secret, digest = new_key()
    proxy = start_proxy({
        "version": 1,
        "gateway": {"hosts": ["llm.test"],
                    "tls": {"cert_file": str(gateway_cert[0]), "key_file": str(gateway_cert[1])}},
        "models": [{"name": "llama", "replicas": [{"url": model.url, "id": "model-1"}]}],
        "pools": [{"name": "web", "replicas": [{"url": web.url, "id": "web-1"}]}],
        "routes": [{"name": "web", "hosts": ["web.test"], "pool": "web",
                    "tls": {"cert_file": str(route_cert[0]), "key_file": str(route_cert[1])}}],
        "keys": [{"id": "k1", "sha256": digest, "user": "ann"}],
    })  # fmt: skip
    return proxy, secret, gateway_cert[0], route_cert[0]


def tls_connection(port: int, server_name: str, cafile: Path) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    return context.wrap_socket(raw, server_hostname=server_name)


def exchange(tls: ssl.SSLSocket, request: bytes) -> bytes:
    """Send one request on a kept-alive connection and read its whole answer."""
    tls.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        piece = tls.recv(65536)
        assert piece, f"the connection ended after {answer!r}"
        answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))  # fmt: skip
    while len(body) < length:
        body += tls.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def llm_test_is_here(monkeypatch):
    """`llm.test` resolves to 127.0.0.1 in this process, so a client sends SNI llm.test."""
    original = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return original("127.0.0.1" if host == "llm.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_the_openai_client_reaches_the_gateway_over_tls_ended_on_the_lean_path(
    tls_proxy, llm_test_is_here, redis_client, redis_prefix
):
    proxy, secret, gateway_ca, _ = tls_proxy
    http_client = httpx.Client(verify=ssl.create_default_context(cafile=str(gateway_ca)))
    client = openai.OpenAI(base_url=f"https://llm.test:{proxy.port}/v1", api_key=secret,
                           http_client=http_client, max_retries=0)  # fmt: skip
    completion = client.chat.completions.create(**HELLO)
    stream = client.chat.completions.create(**HELLO, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    http_client.close()
    assert completion.usage.completion_tokens == 3
    assert text
    wait_until(lambda: redis_client.xlen(f"{redis_prefix}usage") == 2)


def test_one_tls_connection_carries_several_requests_and_refuses_other_hosts(tls_proxy):
    proxy, secret, gateway_ca, _ = tls_proxy
    body = json.dumps(HELLO).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: llm.test\r\nAuthorization: Bearer "
               f"{secret}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body  # fmt: skip
    with tls_connection(proxy.port, "llm.test", gateway_ca) as tls:
        assert tls.selected_alpn_protocol() in (None, "http/1.1")
        for _ in range(3):  # kept alive, one after another
            answer = exchange(tls, request)
            assert answer.startswith(b"HTTP/1.1 200")
            assert b'"completion_tokens": 3' in answer or b'"completion_tokens":3' in answer
        # Not a gateway path: the Routing addon's answer, as on mitmproxy's path.
        for _ in range(2):
            missing = exchange(tls, b"GET /nothing HTTP/1.1\r\nHost: llm.test\r\n\r\n")
            assert missing.startswith(b"HTTP/1.1 404") and b"no_route" in missing
    with tls_connection(proxy.port, "llm.test", gateway_ca) as tls:
        # Another host on this connection: mitmproxy would route it; here its client is told
        # to open a connection of its own (and this one closes).
        misdirected = exchange(tls, b"GET /hello HTTP/1.1\r\nHost: web.test\r\n\r\n")
        assert misdirected.startswith(b"HTTP/1.1 421") and b"misdirected_request" in misdirected


def test_a_routes_host_is_still_ended_by_mitmproxy_beside_it(tls_proxy):
    proxy, _, gateway_ca, route_ca = tls_proxy
    head, _, body = https_get(proxy.port, "web.test", route_ca).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b'"x-forwarded-proto": "https"' in body
    gateway = https_get(proxy.port, "llm.test", gateway_ca, path="/v1/models")
    assert gateway.startswith(b"HTTP/1.1 401") and b"missing_api_key" in gateway


def test_a_broken_handshake_costs_its_connection_only(tls_proxy):
    proxy, _, gateway_ca, _ = tls_proxy
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as raw:
        raw.sendall(client_hello("llm.test") + b"\x16\x03\x03\x00\x07garbage")
        try:
            while raw.recv(65536):  # the server's flight, then the end of the connection
                pass
        except ConnectionResetError:
            pass
    # The proxy still serves everyone else.
    gateway = https_get(proxy.port, "llm.test", gateway_ca, path="/v1/models")
    assert gateway.startswith(b"HTTP/1.1 401") and b"missing_api_key" in gateway


def test_a_post_without_a_key_over_tls_gets_its_401_and_a_clean_end(tls_proxy):
    proxy, _, gateway_ca, _ = tls_proxy
    body = b"x" * 200_000  # never read: the key check answers on the head
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: llm.test\r\nContent-Length: %d\r\n"
               b"\r\n" % len(body)) + body  # fmt: skip
    with tls_connection(proxy.port, "llm.test", gateway_ca) as tls:
        answer = exchange(tls, request)
        assert answer.startswith(b"HTTP/1.1 401") and b"missing_api_key" in answer
        assert b"connection: close" in answer.lower()
    assert "Traceback" not in proxy.output()  # close_notify, then the lingering drain, then FIN
