"""Request bodies against a real agent: authentication first, length checks, JSON nesting."""

from __future__ import annotations

import http.client
import time

import pytest

from agent.tests.harness import client_context, proc_status_kib, read_answer, tls_socket

pytestmark = [pytest.mark.slow, pytest.mark.docker]

MIB = 1024 * 1024
_HEAD = "POST /v1/containers HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"


def _stream(tls, limit: int, seconds: float) -> int:
    """Send up to limit bytes of body until the agent stops reading (closes) or time runs out."""
    chunk, sent = b"x" * (64 * 1024), 0
    deadline = time.monotonic() + seconds
    while sent < limit and time.monotonic() < deadline:
        try:
            tls.sendall(chunk)
        except OSError:
            break  # the agent closed the connection
        sent += len(chunk)
    return sent


def test_negative_length_without_token_is_refused_before_any_body_is_read(agent_factory, pki):
    own = agent_factory()
    before_kib = proc_status_kib(own.pid, "VmRSS")
    with tls_socket(own, pki.ca.cert_path) as tls:
        started = time.monotonic()
        tls.sendall(f"{_HEAD}Content-Length: -1\r\n\r\n".encode())
        sent = _stream(tls, 64 * MIB, seconds=8)
        answer = read_answer(tls, timeout=3)
        elapsed = time.monotonic() - started
        peak_kib = proc_status_kib(own.pid, "VmHWM")
    print(f"A1: streamed {sent / MIB:.1f} MiB, RSS {before_kib // 1024} MiB before, "
          f"peak {peak_kib // 1024} MiB, answer {answer and answer.status} in {elapsed:.2f}s")  # fmt: skip
    assert answer is not None and answer.status == 401
    assert answer.json()["code"] == "unauthorized"
    assert elapsed < 5 and sent < 16 * MIB  # the agent stopped reading after at most 1 MiB
    assert peak_kib - before_kib < 16 * 1024


def _authed_post(agent, pki, headers: list[tuple[str, str]], body: bytes = b""):
    """POST /v1/containers with exactly these headers (http.client adds no length of its own)."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", agent.port, context=client_context(pki.ca.cert_path), timeout=10
    )
    try:
        connection.putrequest("POST", "/v1/containers")
        connection.putheader("Authorization", f"Bearer {agent.token}")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        started = time.monotonic()
        answer = read_answer(connection.sock, timeout=5)
        return answer, time.monotonic() - started
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("length", "status", "code"),
    [
        ("-1", 400, "bad_request"),
        ("12abc", 400, "bad_request"),
        ("+5", 400, "bad_request"),
        (str(1 * MIB + 1), 413, "too_large"),
    ],
)
def test_bad_content_length_is_a_clear_error(agent, pki, length, status, code):
    answer, elapsed = _authed_post(agent, pki, [("Content-Length", length)])
    assert answer is not None and answer.status == status, answer
    assert answer.json()["code"] == code and "Content-Length" in answer.json()["message"]
    assert elapsed < 3


def test_two_different_lengths_are_refused(agent, pki):
    headers = [("Content-Length", "2"), ("Content-Length", "3")]
    answer, _ = _authed_post(agent, pki, headers, b"{}")
    assert answer is not None and answer.status == 400


def test_chunked_bodies_are_refused_with_411(agent, pki):
    answer, _ = _authed_post(
        agent, pki, [("Transfer-Encoding", "chunked")], b"2\r\n{}\r\n0\r\n\r\n"
    )
    assert answer is not None and answer.status == 411
    assert answer.json()["code"] == "length_required"


def test_a_body_route_without_length_answers_411(agent, pki):
    answer, _ = _authed_post(agent, pki, [("Content-Type", "application/json")])
    assert answer is not None and answer.status == 411
    assert "Content-Length" in answer.json()["message"]


def test_wrong_token_with_a_body_still_reads_its_401(agent_factory, pki):
    own = agent_factory()  # its own process: the failure counts against 127.0.0.1
    with own.http(pki.ca.cert_path, token="wrong") as client:
        answer = client.post("/v1/containers", content=b" " * (512 * 1024))
        again = client.get("/v1/health")  # the answer said "close": a new connection follows
    assert answer.status_code == again.status_code == 401
    assert answer.headers["Connection"] == "close"


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_a_400(api, depth):
    answer = api.post("/v1/containers", content=b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "bad_request" and "nested" in answer.json()["message"]


def test_json_nested_to_the_limit_is_parsed(api):
    body = '{"a":' * 63 + "1" + "}" * 63  # 63 objects plus the "1": within 64 levels
    answer = api.post("/v1/containers", content=body.encode())
    assert answer.status_code == 422  # parsed; the spec then lacks its image


def test_brackets_inside_strings_do_not_count_as_nesting(api):
    answer = api.post("/v1/containers", json={"image": "", "name": "[" * 500 + "{" * 500})
    assert answer.status_code == 422
