"""Prometheus' client certificate for agents with mutual TLS: issued by the CLI, accepted by a
real agent process, and written into the monitoring role's prometheus.yml that promtool checks.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from flask import Flask

from agent.auth import hash_token
from agent.tests.harness import AgentProcess, client_context
from portal.core.pki import ca_certificate_path, issue_server_certificate
from portal.monitoring.cli import monitoring_group
from tests.monitoring.promtool import ensure_prometheus

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "ansible_collections/spectr/core/roles/monitoring/templates/prometheus.yml.j2"


def issue_with_cli(app: Flask) -> str:
    result = app.test_cli_runner().invoke(monitoring_group, ["client-certificate"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture()
def mtls_agent(app: Flask, tmp_path: Path) -> Iterator[tuple[AgentProcess, str]]:
    """An agent whose server certificate and client CA are the portal's, with a scrape token."""
    cert, key = issue_server_certificate("agent", ["127.0.0.1"], app.instance_path)
    (tmp_path / "agent.crt").write_text(cert)
    (tmp_path / "agent.key").write_text(key)
    scrape_token = secrets.token_urlsafe(16)
    ca = str(ca_certificate_path(app.instance_path))
    agent = AgentProcess(tmp_path, (str(tmp_path / "agent.crt"), str(tmp_path / "agent.key")),
                         client_ca=ca, metrics_token_sha256=hash_token(scrape_token))  # fmt: skip
    agent.start()
    yield agent, scrape_token
    agent.stop()


@pytest.mark.slow
def test_the_cli_certificate_opens_metrics_on_an_agent_that_requires_one(
    app: Flask, mtls_agent: tuple[AgentProcess, str], tmp_path: Path
) -> None:
    agent, scrape_token = mtls_agent
    pem = issue_with_cli(app)
    (tmp_path / "prometheus.pem").write_text(pem)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ca = str(ca_certificate_path(app.instance_path))

    with agent.http(ca, token=scrape_token,
                    verify=client_context(ca, (str(tmp_path / "prometheus.pem"),) * 2)) as http:  # fmt: skip
        scraped = http.get("/metrics")
    with agent.http(ca, token=scrape_token) as http, pytest.raises(httpx.TransportError):
        http.get("/metrics")  # no client certificate: refused at the handshake

    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert "PRIVATE KEY" in pem
    assert scraped.status_code == 200 and "spectr_host_cpu_seconds" in scraped.text


@pytest.mark.slow
def test_the_role_points_prometheus_at_the_client_certificate(app: Flask, tmp_path: Path) -> None:
    ensure_prometheus()
    pem = issue_with_cli(app)
    key_at = pem.index("-----BEGIN PRIVATE KEY-----")
    variables: dict[str, Any] = {
        "monitoring_config_dir": str(tmp_path), "monitoring_portal_url": "http://127.0.0.1:8000",
        "monitoring_scrape_interval": "15s", "monitoring_sd_refresh_interval": "30s",
        "monitoring_alertmanagers": [], "monitoring_client_cert": pem[:key_at],
    }  # fmt: skip
    config = render_role_template(tmp_path, variables)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for name in ("scrape-token", "agent-scrape-token"):
        (secrets_dir / name).write_text("token")
    (secrets_dir / "ca.pem").write_text(ca_certificate_path(app.instance_path).read_text())
    (secrets_dir / "agent-client.crt").write_text(pem[:key_at])
    (secrets_dir / "agent-client.key").write_text(pem[key_at:])
    (tmp_path / "rules").mkdir()

    checked = subprocess.run(["promtool", "check", "config", str(config)],
                             capture_output=True, text=True, check=False)  # fmt: skip

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"cert_file: {secrets_dir}/agent-client.crt" in config.read_text()
    assert f"key_file: {secrets_dir}/agent-client.key" in config.read_text()


def render_role_template(folder: Path, variables: dict[str, Any]) -> Path:
    """Render the role's prometheus.yml.j2 with Ansible's own template module, locally."""
    vars_file, dest = folder / "vars.json", folder / "prometheus.yml"
    vars_file.write_text(json.dumps(variables))
    ansible = str(Path(sys.executable).with_name("ansible"))
    done = subprocess.run(
        [ansible, "localhost", "-c", "local", "-m", "ansible.builtin.template",
         "-a", f"src={TEMPLATE} dest={dest} mode=0644", "-e", f"@{vars_file}"],
        capture_output=True, text=True, check=False,
        env={"ANSIBLE_HOME": str(folder / "ansible"), "ANSIBLE_LOCALHOST_WARNING": "False",
             "PATH": "/usr/bin:/bin", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return dest
