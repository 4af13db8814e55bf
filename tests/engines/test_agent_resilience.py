"""AgentEngine's retries, timeouts and circuit breaker against real agents that go away."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from portal.engines import (
    AgentEngine,
    CircuitBreaker,
    EngineError,
    NotFound,
    RetryPolicy,
    Unavailable,
    breaker_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker]


class CountingRetry(RetryPolicy):
    """A retry policy that records each wait it is asked for."""

    def __init__(self, attempts: int = 3, base_delay_s: float = 0.05, max_delay_s: float = 0.2):
        super().__init__(attempts, base_delay_s, max_delay_s)
        object.__setattr__(self, "waits", [])

    def delay(self, attempt: int) -> float:
        self.waits.append(attempt)
        return super().delay(attempt)


def _engine(agent, pki, retry, breaker=None, **kwargs):
    return AgentEngine(agent.url, agent.token, pki.ca.cert_path, retry=retry,
                       breaker=breaker or CircuitBreaker(), **kwargs)  # fmt: skip


def test_client_rides_out_an_agent_restart(agent_factory, pki):
    own = agent_factory()
    retry = CountingRetry(attempts=40, base_delay_s=0.05, max_delay_s=0.3)
    with _engine(own, pki, retry, CircuitBreaker(failure_threshold=100)) as engine:
        assert engine.health().reachable
        own.stop()
        restarter = threading.Timer(0.5, own.start, kwargs={"wait": False})
        restarter.start()
        containers = engine.list_containers({"spectr.test": "nothing-has-this"})
        restarter.join()
    assert containers == []
    assert retry.waits, "the call succeeded only after retrying"


@pytest.mark.parametrize("wrong", ["token", "path"])
def test_4xx_is_never_retried(agent, pki, wrong):
    retry = CountingRetry()
    token = "wrong" if wrong == "token" else agent.token
    engine = AgentEngine(agent.url, token, pki.ca.cert_path, retry=retry, breaker=CircuitBreaker())
    with engine:
        expected = EngineError if wrong == "token" else NotFound
        with pytest.raises(expected) as caught:
            engine.inspect_container("spectr-test-missing")
    assert retry.waits == []
    if wrong == "token":
        assert caught.value.details["agent_status"] == 401
        assert "wrong" not in str(caught.value)


def test_5xx_is_retried_then_reported_unavailable(agent_factory, pki, tmp_path):
    orphan = agent_factory(docker_socket=str(tmp_path / "absent.sock"))
    retry = CountingRetry(attempts=3)
    with _engine(orphan, pki, retry) as engine, pytest.raises(Unavailable) as caught:
        engine.list_images()
    assert retry.waits == [0, 1]
    assert caught.value.details["agent_code"] == "engine_unreachable"


def test_non_idempotent_create_is_not_retried_after_a_5xx(agent_factory, pki, tmp_path, image):
    from portal.engines import ContainerSpec

    orphan = agent_factory(docker_socket=str(tmp_path / "absent.sock"))
    retry = CountingRetry(attempts=3)
    with _engine(orphan, pki, retry) as engine, pytest.raises(Unavailable):
        engine.create_container(ContainerSpec(image=image))
    assert retry.waits == []


def test_breaker_opens_on_a_dead_agent_and_closes_when_it_returns(agent_factory, pki):
    own = agent_factory()
    own.stop()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=1.0)
    retry = CountingRetry(attempts=1)
    with _engine(own, pki, retry, breaker) as engine:
        for _ in range(3):
            with pytest.raises(Unavailable, match="unreachable"):
                engine.list_images()
        assert breaker.state == "open"
        with pytest.raises(Unavailable, match="circuit open") as caught:
            engine.list_images()
        assert caught.value.details["host"] == own.url.removeprefix("https://")
        own.start()
        time.sleep(breaker.reset_timeout_s)  # the configured rest, not a measured timing
        assert breaker.state == "half-open"
        assert engine.list_images()
        assert breaker.state == "closed"


def test_failed_trial_reopens_the_breaker(agent_factory, pki):
    own = agent_factory()
    own.stop()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=0.2)
    with _engine(own, pki, CountingRetry(attempts=1), breaker) as engine:
        with pytest.raises(Unavailable):
            engine.list_images()
        time.sleep(breaker.reset_timeout_s)
        with pytest.raises(Unavailable, match="unreachable"):
            engine.list_images()  # the one trial call, which fails
        assert breaker.state == "open"


def test_health_reports_a_dead_agent_without_raising(agent_factory, pki):
    own = agent_factory()
    own.stop()
    with _engine(own, pki, CountingRetry(attempts=1)) as engine:
        health = engine.health()
    assert not health.reachable and health.error


def test_breakers_are_shared_per_host():
    assert breaker_for("10.9.8.7:7443") is breaker_for("10.9.8.7:7443")
    assert breaker_for("10.9.8.7:7443") is not breaker_for("10.9.8.6:7443")


def test_a_host_that_never_answers_times_out_instead_of_stalling(pki):
    # A listener that accepts TCP but never speaks TLS: the worst kind of dead host.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        engine = AgentEngine(url, "t", pki.ca.cert_path, connect_timeout_s=0.5, timeout_s=0.5,
                             retry=CountingRetry(attempts=2), breaker=CircuitBreaker())  # fmt: skip
        with engine, pytest.raises(Unavailable):
            engine.list_containers()


def test_stream_interrupted_by_agent_stop_raises_unavailable(agent_factory, pki, run_container):
    own = agent_factory()
    container = run_container(["sh", "-c", "while true; do echo tick; sleep 0.05; done"], "cut")
    with _engine(own, pki, CountingRetry(attempts=1)) as engine:
        stream = engine.logs(container.name, follow=True)
        assert next(stream).data == "tick\n"
        own.stop()
        with pytest.raises(Unavailable, match="interrupted"):
            for _ in stream:
                pass
        own.start()
        assert next(engine.logs(container.name, follow=True, tail=1)).data == "tick\n"


def test_ca_as_pem_text_and_a_client_certificate_for_mutual_tls(agent_factory, pki):
    from pathlib import Path

    mtls = agent_factory(client_ca=pki.ca.cert_path)
    ca_pem = Path(pki.ca.cert_path).read_text()
    with AgentEngine(mtls.url, mtls.token, ca_pem, client_cert=pki.client) as engine:
        assert engine.health().reachable
    retry = CountingRetry()
    without_cert = AgentEngine(mtls.url, mtls.token, ca_pem, retry=retry)
    with without_cert, pytest.raises(Unavailable):
        without_cert.list_images()  # no client certificate: the agent ends the handshake


def test_untrusted_agent_certificate_fails_at_once_without_retries(agent_factory, pki):
    rogue = agent_factory(cert=pki.rogue_server)
    retry = CountingRetry()
    with _engine(rogue, pki, retry) as engine, pytest.raises(Unavailable, match="TLS") as caught:
        engine.list_images()
    assert retry.waits == []
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
