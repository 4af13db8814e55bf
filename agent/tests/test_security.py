"""TLS, bearer-token and mutual-TLS behaviour of a real agent process."""

from __future__ import annotations

import socket
import ssl
import sys
import time

import httpx
import pytest

from agent.tests.harness import AgentProcess, client_context

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_request_without_token_is_refused(agent, pki):
    with agent.http(pki.ca.cert_path, token=None) as client:
        answer = client.get("/v1/containers")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json() == {"code": "unauthorized", "details": {},
                             "message": "a valid bearer token is required"}  # fmt: skip


@pytest.mark.parametrize("path", ["/v1/health", "/v1/openapi.json", "/metrics", "/v1/nothing"])
def test_every_path_needs_the_token(agent, pki, path):
    with agent.http(pki.ca.cert_path, token="not-the-token") as client:
        assert client.get(path).status_code == 401


def test_repeated_failures_are_backed_off_then_a_good_token_is_still_locked(agent_factory, pki):
    own = agent_factory()  # its own process: the lockout is per client address
    with own.http(pki.ca.cert_path, token="wrong") as bad:
        statuses = [bad.get("/v1/health").status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    with own.http(pki.ca.cert_path) as good:
        locked = good.get("/v1/health")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert locked.json()["code"] == "too_many_failures"


def test_log_holds_no_token(agent_factory, pki):
    own = agent_factory()
    with own.http(pki.ca.cert_path) as client:
        client.get("/v1/health", params={"x": "1"})
    with own.http(pki.ca.cert_path, token="guessed-secret-value") as client:
        client.get("/v1/health")
    own.stop()
    log = own.log_path.read_text()
    assert "GET /v1/health 200" in log
    assert own.token not in log and "guessed-secret-value" not in log
    assert own.config["token_sha256"] not in log


def test_client_refuses_an_agent_certificate_from_another_ca(agent_factory, pki):
    rogue = agent_factory(cert=pki.rogue_server)
    with rogue.http(pki.ca.cert_path) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get("/v1/health")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_plain_http_gets_no_answer(agent):
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{agent.port}/v1/health", timeout=5)


@pytest.fixture(scope="module")
def mtls_agent(agent_factory, pki):
    return agent_factory(client_ca=pki.ca.cert_path)


def test_mtls_accepts_a_client_certificate_of_the_spectr_ca(mtls_agent, pki):
    with mtls_agent.http(pki.ca.cert_path, cert=pki.client) as client:
        answer = client.get("/v1/health")
    assert answer.status_code == 200
    assert answer.json()["engine"]["reachable"] is True


def test_mtls_still_requires_the_token(mtls_agent, pki):
    with mtls_agent.http(pki.ca.cert_path, token=None, cert=pki.client) as client:
        assert client.get("/v1/health").status_code == 401


@pytest.mark.parametrize(
    "client_cert", [None, "rogue_client", "server"], ids=["no-cert", "rogue-cert", "server-cert"]
)
def test_mtls_refuses_clients_without_a_trusted_certificate(mtls_agent, pki, client_cert):
    # "server": an agent's own certificate, from the right CA but without the clientAuth usage
    cert = getattr(pki, client_cert) if client_cert else None
    verify = client_context(pki.ca.cert_path, cert)
    with (
        mtls_agent.http(pki.ca.cert_path, verify=verify) as client,
        pytest.raises((httpx.TransportError, ssl.SSLError)),
    ):
        client.get("/v1/health")


def test_agent_binds_only_the_configured_address(agent):
    # listen_host is 127.0.0.1: another loopback address of this machine must not answer
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", agent.port), timeout=2).close()


def test_metrics_token_opens_metrics_and_nothing_else(agent_factory, pki):
    from agent.auth import hash_token

    scraper = agent_factory(metrics_token_sha256=hash_token("scrape-token"))
    with scraper.http(pki.ca.cert_path, token="scrape-token") as client:
        metrics = client.get("/metrics")
        health = client.get("/v1/health")
    assert metrics.status_code == 200 and "spectr_engine_up" in metrics.text
    assert health.status_code == 401


def test_sigterm_stops_the_agent_cleanly(agent_factory):
    own = agent_factory()
    own.stop()
    assert own.process.returncode == 0


# The agent, with one change: it sends itself SIGTERM the moment its port opens, as a service
# manager that stops an agent it has just started may.
TERM_AS_THE_PORT_OPENS = """
import os, signal, sys
import agent.server
bind = agent.server.AgentServer.__init__
def bind_then_term(self, app):
    bind(self, app)
    os.kill(os.getpid(), signal.SIGTERM)
agent.server.AgentServer.__init__ = bind_then_term
from agent.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_as_soon_as_the_port_opens_stops_the_agent_cleanly(pki, tmp_path):
    own = AgentProcess(
        tmp_path, pki.server, launcher=[sys.executable, "-c", TERM_AS_THE_PORT_OPENS]
    )
    own.start(wait=False)
    try:
        assert own.process.wait(timeout=30) == 0, own.log_path.read_text()[-2000:]
    finally:
        own.stop()


def test_connections_beyond_the_cap_are_closed(agent_factory, pki):
    own = agent_factory(max_connections=2)
    context = client_context(pki.ca.cert_path)
    held = [context.wrap_socket(socket.create_connection(("127.0.0.1", own.port)),
                                server_hostname="127.0.0.1") for _ in range(2)]  # fmt: skip
    # Both are being served (the agent waits for a body): a connection that only waits for a
    # request would be evicted for the new one instead (test_connection_limits.py).
    for connection in held:
        connection.sendall(f"POST /v1/containers HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                           f"Authorization: Bearer {own.token}\r\n\r\n".encode())  # fmt: skip
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", own.port), timeout=5)
    try:
        # a timeout here would mean the agent accepted and waits: not caught, so the test fails
        with context.wrap_socket(extra, server_hostname="127.0.0.1") as tls:
            outcome: object = tls.recv(1)
    except (ssl.SSLError, ConnectionError) as error:
        outcome = error
    finally:
        extra.close()
        for connection in held:
            connection.close()
    assert outcome == b"" or isinstance(outcome, ssl.SSLError | ConnectionError)
    # The agent frees a slot when it reads the held connection's EOF, a moment after the close
    # above: until then a new connection is still beyond the cap and is closed the same way.
    assert _health_within(own, pki, seconds=10) == 200


def _health_within(agent, pki, seconds: float) -> int | None:
    """Return the health status once a connection gets through, or None after the deadline."""
    deadline = time.monotonic() + seconds
    with agent.http(pki.ca.cert_path) as client:
        while time.monotonic() < deadline:
            try:
                return client.get("/v1/health").status_code
            except httpx.TransportError:
                time.sleep(0.1)
    return None
