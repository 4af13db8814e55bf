"""deploy/monitoring passes Debian's promtool: config, rules, and the rules' unit tests."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.promtool import DEPLOY, HERE, ensure_prometheus, render_config

pytestmark = pytest.mark.slow  # installs Debian's prometheus on first use
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


@pytest.fixture(scope="module", autouse=True)
def prometheus_installed() -> None:
    ensure_prometheus()


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = render_config(tmp_path)

    checked = promtool("check", "config", str(config))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    # The check above means something only if promtool fails on a broken copy.
    config = render_config(tmp_path)
    config.write_text(config.read_text().replace("http_sd_configs", "http_sd_config"))

    assert promtool("check", "config", str(config)).returncode != 0


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    rules = DEPLOY / "rules" / "spectr.rules.yml"

    checked = promtool("check", "rules", str(rules))
    tested = promtool("test", "rules", "rules.test.yml", cwd=HERE)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_rules_cover_every_alert_the_issue_names() -> None:
    groups = yaml.safe_load((DEPLOY / "rules" / "spectr.rules.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}

    assert {
        "SpectrHostUnreachable",
        "SpectrContainerRestarting",
        "SpectrGpuMemoryHigh",
        "SpectrGpuTemperatureHigh",
        "SpectrOperationFailureRate",
        "SpectrQueueBacklog",
    } <= alerts


def test_dashboards_are_grafana_json_on_the_provisioned_data_source() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "spectr.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    documents = [json.loads(path.read_text()) for path in DASHBOARDS]

    assert [path.stem for path in DASHBOARDS] == ["fleet", "gateway", "gpus", "host"]
    assert len({d["uid"] for d in documents}) == len(documents)
    for document in documents:
        assert document["panels"], document["title"]
        for panel in document["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"] and all(
                re.search(r"spectr_|up\b", t["expr"]) for t in panel["targets"]
            )
