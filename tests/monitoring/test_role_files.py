"""The monitoring role ships the same rules and dashboards as deploy/monitoring."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "monitoring"
ROLE_FILES = ROOT / "ansible_collections" / "spectr" / "core" / "roles" / "monitoring" / "files"


@pytest.mark.parametrize(
    "relative",
    [
        "rules/spectr.rules.yml",
        "grafana/provisioning/datasources/spectr.yml",
        "grafana/dashboards/fleet.json",
        "grafana/dashboards/host.json",
        "grafana/dashboards/gpus.json",
        "grafana/dashboards/gateway.json",
    ],
)
def test_role_copy_matches_deploy_monitoring(relative: str) -> None:
    assert (ROLE_FILES / relative).read_bytes() == (DEPLOY / relative).read_bytes(), (
        f"copy deploy/monitoring/{relative} into the role's files/"
    )
