"""SIGHUP: a real agent process takes a new certificate and tokens without dropping service."""

from __future__ import annotations

import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agent.auth import hash_token
from agent.tests.harness import AgentProcess, client_context

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def served_certificate(agent: AgentProcess, context) -> bytes:
    """The DER certificate a new TLS connection gets."""
    with (
        socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.getpeercert(binary_form=True)


def der(path: str) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(Path(path).read_text())


def wait_until(predicate, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_for_log(agent: AgentProcess, text: str, seconds: float = 60.0) -> None:
    """Wait for `text` in the agent's log; fail at once, with the log, if the agent exited."""

    def logged() -> bool:
        log = agent.log_path.read_text()
        assert agent.process is not None and agent.process.poll() is None, (
            f"the agent exited ({agent.process and agent.process.returncode}): {log[-2000:]}"
        )
        return text in log

    wait_until(logged, seconds)


def status(agent: AgentProcess, context, token: str) -> int:
    with agent.http("", token=token, verify=context) as client:
        return client.get("/v1/health").status_code


class Poller:
    """Health checks every 20 ms like the portal's: fresh and kept-alive connections alike."""

    def __init__(self, agent: AgentProcess, context, token: str) -> None:
        self.token, self.statuses, self.errors = token, [], []
        self._stop = threading.Event()
        self._agent, self._context = agent, context
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        kept = self._agent.http("", token=None, verify=self._context)
        while not self._stop.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            for client in (kept, None):
                try:
                    if client is None:
                        self.statuses.append(status(self._agent, self._context, self.token))
                    else:
                        self.statuses.append(client.get("/v1/health", headers=headers).status_code)
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
            time.sleep(0.02)
        kept.close()

    def settle(self, count: int = 7) -> None:
        """Wait for `count` more answers: progress, not wall time, so a loaded machine passes."""
        seen = len(self.statuses) + len(self.errors)
        wait_until(lambda: len(self.statuses) + len(self.errors) >= seen + count, seconds=60)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_reload_rotates_certificate_and_token_while_requests_keep_succeeding(agent_factory, pki):
    agent = agent_factory(client_ca=pki.ca.cert_path)
    context = client_context(pki.ca.cert_path, pki.client)
    old_token, new_token = agent.token, secrets.token_urlsafe(24)
    new_cert = pki.ca.issue(f"agent-{secrets.token_hex(3)}", server=True)
    pid = agent.pid
    with (
        agent.http("", token=old_token, verify=context) as kept,
        Poller(agent, context, old_token) as poller,
    ):
        kept_peer = kept.get("/v1/health").extensions["network_stream"].get_extra_info("ssl_object")
        poller.settle()
        agent.reload(tls_cert=new_cert[0], tls_key=new_cert[1],
                     token_sha256=hash_token(new_token),
                     previous_token_sha256=hash_token(old_token))  # fmt: skip
        wait_until(lambda: served_certificate(agent, context) == der(new_cert[0]))
        # both tokens work while clients switch; the open connection was not dropped
        assert status(agent, context, new_token) == 200
        assert status(agent, context, old_token) == 200
        again = kept.get("/v1/health")
        assert again.status_code == 200
        assert again.extensions["network_stream"].get_extra_info("ssl_object") is kept_peer
        assert kept_peer.getpeercert(True) == der(pki.server[0])  # the old session
        poller.token = new_token  # the portal switches
        poller.settle()
        agent.reload(previous_token_sha256=None)
        wait_until(lambda: status(agent, context, old_token) == 401)
        assert status(agent, context, new_token) == 200
        poller.settle()

    assert poller.errors == []
    assert len(poller.statuses) > 20 and set(poller.statuses) == {200}
    assert agent.pid == pid and agent.process.poll() is None
    log = agent.log_path.read_text()
    assert log.count("reloaded: certificate") == 2
    assert old_token not in log and new_token not in log and hash_token(new_token) not in log


def test_a_reload_that_does_not_load_keeps_the_running_credentials(agent_factory, pki):
    agent = agent_factory(client_ca=pki.ca.cert_path)
    context = client_context(pki.ca.cert_path, pki.client)
    other_token = secrets.token_urlsafe(24)
    # a key that does not belong to the certificate: the TLS context cannot be built
    agent.reload(tls_key=pki.rogue_server[1], token_sha256=hash_token(other_token))
    wait_for_log(agent, "reload refused")

    assert served_certificate(agent, context) == der(pki.server[0])
    assert status(agent, context, agent.token) == 200
    assert status(agent, context, other_token) == 401
    assert agent.process.poll() is None


def test_reload_names_settings_that_need_a_restart(agent_factory, pki):
    agent = agent_factory()
    agent.reload(max_connections=8, log_level="DEBUG")
    wait_for_log(agent, "restart the agent to apply")

    assert "restart the agent to apply: max_connections" in agent.log_path.read_text()
    assert status(agent, client_context(pki.ca.cert_path), agent.token) == 200


# The agent with the moment after its port opens made 3 s long: under load that moment was long
# enough for a SIGHUP sent as soon as the port accepted to arrive before the agent handled it.
SLOW_AFTER_LISTENING = """
import sys, time
import agent.server as server
opened = server.AgentServer.__init__
def slow(self, app):
    opened(self, app)
    time.sleep(3)
server.AgentServer.__init__ = slow
from agent.__main__ import main
sys.exit(main())
"""


def test_a_sighup_as_soon_as_the_port_opens_is_a_reload_not_the_agents_end(agent_factory, pki):
    agent = agent_factory(launcher=[sys.executable, "-c", SLOW_AFTER_LISTENING])
    new_token = secrets.token_urlsafe(24)
    # Within the 3 s: the port accepts connections, the agent does not serve them yet.
    agent.reload(token_sha256=hash_token(new_token))

    wait_for_log(agent, "reloaded: certificate")
    assert "listening on" in agent.log_path.read_text()
    assert status(agent, client_context(pki.ca.cert_path), new_token) == 200
