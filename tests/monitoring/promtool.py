"""Debian's Prometheus for the tests: install it once, render deploy/monitoring into a folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEPLOY = ROOT / "deploy" / "monitoring"
SECRETS_DIR = "/etc/prometheus/spectr/"
DEFAULT_PORTAL = "http://127.0.0.1:8000"


def ensure_prometheus() -> None:
    """Run the idempotent installer; fail (not skip) when Prometheus cannot be had."""
    done = subprocess.run(
        [str(HERE / "install-prometheus.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not shutil.which("promtool") or not shutil.which("prometheus"):
        pytest.fail(f"could not install Debian's prometheus:\n{done.stdout}\n{done.stderr}")


def render_config(
    folder: Path,
    portal_url: str = DEFAULT_PORTAL,
    scrape_token: str = "spectr_test",
    agent_token: str = "agent_test",
    ca_pem: str = "",
    client_pem: str = "",
    scrape_interval: str | None = None,
) -> Path:
    """Copy deploy/monitoring to `folder` with its secrets there and the portal URL set."""
    shutil.copytree(DEPLOY / "rules", folder / "rules")
    secrets = folder / "secrets"
    secrets.mkdir()
    (secrets / "scrape-token").write_text(scrape_token)
    (secrets / "agent-scrape-token").write_text(agent_token)
    (secrets / "ca.pem").write_text(ca_pem)
    (secrets / "client.pem").write_text(client_pem)
    text = (DEPLOY / "prometheus.yml").read_text()
    text = text.replace(SECRETS_DIR, f"{secrets}/").replace(DEFAULT_PORTAL, portal_url)
    if scrape_interval:
        text = text.replace("scrape_interval: 15s", f"scrape_interval: {scrape_interval}")
        text = text.replace("refresh_interval: 30s", f"refresh_interval: {scrape_interval}")
    config = folder / "prometheus.yml"
    config.write_text(text)
    return config
