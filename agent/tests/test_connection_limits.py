"""Idle and slow clients against a real agent: deadlines, eviction, the per-address cap."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from agent.tests.harness import client_context, read_answer, tls_socket

pytestmark = [pytest.mark.slow, pytest.mark.docker]

# The good client comes from another loopback address: the per-address cap counts 127.0.0.1.
GOOD_SOURCE = "127.0.0.2"


def _good_client(agent, pki) -> httpx.Client:
    transport = httpx.HTTPTransport(
        verify=client_context(pki.ca.cert_path), local_address=GOOD_SOURCE
    )
    return httpx.Client(
        base_url=agent.url, transport=transport, timeout=httpx.Timeout(5.0),
        headers={"Authorization": f"Bearer {agent.token}"},
    )  # fmt: skip


def _seconds_to_health(agent, pki, limit_s: float) -> float | None:
    """Return how long a good client needed to get 200 from /v1/health (None: not in limit_s)."""
    started = time.monotonic()
    with _good_client(agent, pki) as client:
        while time.monotonic() - started < limit_s:
            try:
                if client.get("/v1/health").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                time.sleep(0.1)
    return None


def _raw(agent) -> socket.socket:
    """A TCP connection that never starts TLS."""
    return socket.create_connection(("127.0.0.1", agent.port), timeout=5)


def _slowloris(agent, pki) -> socket.socket:
    """A TLS connection that has sent a request line and one header, and no end of head."""
    tls = tls_socket(agent, pki.ca.cert_path)
    tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: agent\r\n")
    return tls


def _closed_by_agent(sock: socket.socket, wait_s: float) -> float | None:
    """Return after how many seconds the agent closed the connection (None: still open)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < wait_s:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_idle_and_slow_connections_do_not_lock_out_a_good_client(agent_factory, pki):
    own = agent_factory(max_connections=4)
    idle = [tls_socket(own, pki.ca.cert_path) for _ in range(2)]  # handshake done, then silence
    held = [*idle, _slowloris(own, pki), _slowloris(own, pki)]
    try:
        time.sleep(0.3)  # the agent has taken every slot
        served_s = _seconds_to_health(own, pki, limit_s=15)
    finally:
        for sock in held:
            sock.close()
    print(f"A2: good client served after {served_s} s with every slot held")
    assert served_s is not None and served_s < 3


def test_a_slow_request_head_is_closed_at_its_deadline(agent_factory, pki):
    own = agent_factory(request_head_timeout_s=2)
    with _slowloris(own, pki) as tls:
        started, closed_s = time.monotonic(), None
        while closed_s is None and time.monotonic() - started < 8:
            with contextlib.suppress(OSError):
                tls.sendall(b"X-Slow: 1\r\n")  # one header line every half second
            closed_s = _closed_by_agent(tls, wait_s=0.5)
        closed_s = closed_s and time.monotonic() - started
    print(f"A2: slowloris head closed after {closed_s} s")
    assert closed_s is not None and 1.5 < closed_s < 4


def test_a_connection_without_tls_handshake_is_closed_at_its_deadline(agent_factory):
    own = agent_factory(tls_handshake_timeout_s=1)
    with _raw(own) as raw:
        raw.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
        closed_s = _closed_by_agent(raw, wait_s=8)
    assert closed_s is not None and 0.5 < closed_s < 3


def _two_admitted(agent) -> list[socket.socket]:
    """Two raw connections the agent admitted. The harness's readiness probe (connect, close)
    holds a slot until the agent's thread sees it gone, and can get the second one refused."""
    for _ in range(20):
        held = [_raw(agent), _raw(agent)]
        time.sleep(0.2)
        if all(_closed_by_agent(sock, wait_s=0.2) is None for sock in held):
            return held
        for sock in held:
            sock.close()
        time.sleep(0.2)
    raise AssertionError("the agent never admitted two connections from one address")


def test_one_address_cannot_hold_more_than_its_share(agent_factory, pki):
    # A long handshake deadline: only the per-address cap can close the third connection.
    own = agent_factory(
        max_connections=8, max_unauthenticated_per_client=2, tls_handshake_timeout_s=60
    )
    held = _two_admitted(own)
    try:
        with _raw(own) as third:
            assert _closed_by_agent(third, wait_s=10) is not None
        assert all(_closed_by_agent(sock, wait_s=0.2) is None for sock in held)
        assert _seconds_to_health(own, pki, limit_s=5) is not None
    finally:
        for sock in held:
            sock.close()


def test_an_authenticated_connection_may_idle_longer_than_the_head_deadline(agent_factory, pki):
    own = agent_factory(request_head_timeout_s=1)
    request = f"GET /v1/health HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {own.token}\r\n\r\n"
    with tls_socket(own, pki.ca.cert_path) as tls:
        tls.sendall(request.encode())
        first = read_answer(tls, timeout=5)
        time.sleep(1.5)  # an authenticated connection waiting for its next request is not slow
        tls.sendall(request.encode())
        second = read_answer(tls, timeout=5)
    assert first is not None and second is not None
    assert first.status == second.status == 200


def test_a_request_head_over_64_kib_is_refused_before_authentication(agent_factory, pki):
    own = agent_factory()
    with tls_socket(own, pki.ca.cert_path) as tls:
        tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: agent\r\n")
        with contextlib.suppress(OSError):  # the agent may close while lines still travel
            for number in range(60):
                tls.sendall(f"X-Pad-{number}: {'a' * 60_000}\r\n".encode())
        answer = read_answer(tls, timeout=5)
    assert answer is not None and answer.status == 431
