"""What a gateway client can make the proxy read: nothing without a valid key, and no more than
`--max-body-mb` with one (413 `request_too_large`), on the lean path and on mitmproxy's.

Before, both paths read a request's whole body before the key check and without a limit: one
unauthenticated client declaring a 300 MiB body made the proxy hold what it sent. The upstream
is a stand-in model server (no real model runs here).
"""

from __future__ import annotations

import json
import socket

import pytest

from proxy.tests.proxy_harness import new_key

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CHAT = "/v1/chat/completions"
BIG = 300 * 1024 * 1024


def document(model_url: str, digest: str) -> dict:
    return {
        "version": 1,
        "gateway": {"hosts": ["llm.test"]},
        "models": [{"name": "llama", "replicas": [{"url": model_url, "id": "model-1"}]}],
        "keys": [{"id": "k1", "sha256": digest, "user": "ann"}],
    }


def exchange(port: int, head: str, body: bytes = b"") -> bytes:
    """Send a head (and the start of a body), read the answer until the proxy closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(head.encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def chat_head(length: str, secret: str | None) -> str:
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    framing = "Transfer-Encoding: chunked" if length == "chunked" else f"Content-Length: {length}"
    return f"POST {CHAT} HTTP/1.1\r\nHost: llm.test\r\n{auth}{framing}\r\n\r\n"


def status_and_error(answer: bytes) -> tuple[int, str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    error = json.loads(body)["error"]
    return status, error["code"], error["message"]


@pytest.fixture
def proxy_at(upstream, start_proxy):
    def start(path: str):
        secret, digest = new_key()
        proxy = start_proxy(
            document(upstream("model").url, digest),
            args=["--gateway-path", path, "--max-body-mb", "1"],
        )
        return proxy, secret

    return start


def test_lean_path_answers_an_unauthenticated_huge_body_at_once_without_reading_it(proxy_at):
    proxy, _ = proxy_at("lean")
    # The client declares 300 MiB and sends 1 KiB: the answer comes without the rest.
    answer = exchange(proxy.port, chat_head(str(BIG), None), b"x" * 1024)
    assert status_and_error(answer)[:2] == (401, "missing_api_key")
    assert b"connection: close" in answer.lower()
    answer = exchange(proxy.port, chat_head("chunked", "sk-wrong"), b"400\r\n" + b"x" * 1024)
    assert status_and_error(answer)[:2] == (401, "invalid_api_key")


def test_lean_path_refuses_a_body_over_the_limit_by_its_length_or_as_it_grows(proxy_at):
    proxy, secret = proxy_at("lean")
    status, code, message = status_and_error(
        exchange(proxy.port, chat_head(str(BIG), secret), b"x" * 1024)
    )
    assert (status, code) == (413, "request_too_large")
    assert "at most 1 MiB" in message
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20))  # 1.25 MiB
    status, code, _ = status_and_error(exchange(proxy.port, chat_head("chunked", secret), chunks))
    assert (status, code) == (413, "request_too_large")


def test_lean_path_still_serves_a_body_under_the_limit(proxy_at):
    proxy, secret = proxy_at("lean")
    body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": "x" * 500_000}],
                       "max_tokens": 2}).encode()  # fmt: skip
    head = chat_head(str(len(body)), secret).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    answer = exchange(proxy.port, head, body)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("secret_given", [False, True], ids=["unauthenticated", "over-limit"])
def test_mitmproxy_path_cuts_off_a_body_it_must_not_read(proxy_at, secret_given):
    proxy, secret = proxy_at("mitmproxy")
    # mitmproxy reads a body whole before the hook that could answer: the connection is cut
    # off on the head instead, with nothing read past what the client already sent.
    answer = exchange(
        proxy.port, chat_head(str(BIG), secret if secret_given else None), b"x" * 1024
    )
    assert answer == b""
    # A small unauthenticated request still gets its 401.
    small = exchange(
        proxy.port, chat_head("2", None).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"), b"{}"
    )
    assert status_and_error(small)[:2] == (401, "missing_api_key")
