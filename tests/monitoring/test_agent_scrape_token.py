"""The agent's optional fleet-wide scrape token: it opens GET /metrics and nothing else."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.auth import hash_token
from agent.config import AgentConfig, ConfigError
from agent.tests.harness import AgentProcess, CertificateAuthority


def test_config_accepts_a_scrape_token_hash_and_normalises_it(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    digest = hash_token("scrape")
    config = AgentConfig(
        tls_cert=str(cert),
        tls_key=str(key),
        token_sha256=hash_token("main"),
        metrics_token_sha256=f" {digest.upper()} ",
    ).validate()

    assert config.metrics_token_sha256 == digest


def test_config_refuses_a_scrape_token_that_is_not_a_sha256(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    config = AgentConfig(
        tls_cert=str(cert),
        tls_key=str(cert),
        token_sha256=hash_token("main"),
        metrics_token_sha256="plain-token",
    )

    with pytest.raises(ConfigError, match="metrics_token_sha256"):
        config.validate()


@pytest.fixture(scope="module")
def scrape_agent(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AgentProcess, str, str]]:
    folder = tmp_path_factory.mktemp("scrape-agent")
    ca = CertificateAuthority.create("spectr", folder)
    scrape_token = secrets.token_urlsafe(24)
    agent = AgentProcess(
        folder, ca.issue("agent", server=True), metrics_token_sha256=hash_token(scrape_token)
    )
    agent.start()
    try:
        yield agent, scrape_token, ca.cert_path
    finally:
        agent.stop()


@pytest.mark.slow
def test_scrape_token_reads_metrics(scrape_agent: tuple[AgentProcess, str, str]) -> None:
    agent, scrape_token, ca = scrape_agent
    with agent.http(ca, token=scrape_token) as http:
        response = http.get("/metrics")

    assert response.status_code == 200
    assert "spectr_host_cpu_seconds" in response.text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/containers"), ("GET", "/v1/facts"), ("POST", "/metrics"), ("GET", "/metricsx")],
)
def test_scrape_token_opens_nothing_else(
    scrape_agent: tuple[AgentProcess, str, str], method: str, path: str
) -> None:
    agent, scrape_token, ca = scrape_agent
    with agent.http(ca, token=scrape_token) as http:
        response = http.request(method, path)

    assert response.status_code == 401


@pytest.mark.slow
def test_agent_token_still_works_everywhere(scrape_agent: tuple[AgentProcess, str, str]) -> None:
    agent, _, ca = scrape_agent
    with agent.http(ca) as http:
        assert http.get("/metrics").status_code == 200
        assert http.get("/v1/health").status_code == 200
