"""Debian's Prometheus follows the fleet through Spectr's HTTP SD and scrapes all three parts.

Everything is real and on 127.0.0.1: `spectr run` (embedded SQLite), a spectr-agent over TLS
signed by a throw-away Spectr CA, a spectr-proxy that fetches its config from that portal, and
a `prometheus` process whose only knowledge of them is deploy/monitoring/prometheus.yml.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.auth import hash_token
from agent.tests.harness import AgentProcess
from portal.core.pki import ca_certificate_path, ca_certificate_pem
from proxy.tests.proxy_harness import ProxyProcess
from tests.monitoring.fleet_setup import issue_agent_certificate, register_hosts
from tests.monitoring.processes import PortalProcess, PrometheusProcess, wait_for
from tests.monitoring.promtool import DEPLOY, ensure_prometheus, render_config

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"
JOBS = {"spectr-portal", "spectr-agent", "spectr-proxy"}


@dataclass
class Fleet:
    portal: PortalProcess
    agent: AgentProcess
    proxy: ProxyProcess
    prometheus: PrometheusProcess


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    ensure_prometheus()
    folder = tmp_path_factory.mktemp("monitored-fleet")
    started: list = []
    try:
        (folder / "instance").mkdir()
        portal = PortalProcess(folder / "instance")
        started.append(portal.start())
        scrape_token = portal.cli("monitoring", "scrape-token").strip().splitlines()[-1]
        portal.cli("user", "create", "proxy-svc", "--role", "operator",
                   SPECTR_NEW_USER_PASSWORD=secrets.token_urlsafe(16))  # fmt: skip
        proxy_token = portal.cli("token", "create", "proxy-svc").strip().splitlines()[-1]

        # The agent's certificate comes from the portal's own Spectr CA and it requires a client
        # certificate from it, as a bootstrap sets it up; one scrape credential for the fleet:
        # the agent accepts the portal token on /metrics.
        agent = AgentProcess(
            folder,
            issue_agent_certificate(portal.instance),
            client_ca=str(ca_certificate_path(str(portal.instance))),
            metrics_token_sha256=hash_token(scrape_token),
        )
        started.append(agent.start())
        register_hosts(portal.instance, agent)
        ca_pem = ca_certificate_pem(str(portal.instance))

        token_file = folder / "proxy-token"
        token_file.write_text(proxy_token)
        proxy = ProxyProcess(
            args=["--portal-url", portal.url, "--portal-token-file", str(token_file),
                  "--poll-interval", "1", "--redis-url", REDIS_URL],
            redis_prefix=f"spectr-test-{secrets.token_hex(4)}:",
        )  # fmt: skip
        started.append(proxy.start())

        (folder / "prometheus").mkdir()
        config = render_config(
            folder / "prometheus", portal_url=portal.url, scrape_token=scrape_token,
            agent_token=scrape_token, ca_pem=ca_pem, scrape_interval="1s",
            client_pem=portal.cli("monitoring", "client-certificate"),
        )  # fmt: skip
        prometheus = PrometheusProcess(config)
        started.append(prometheus.start())
        yield Fleet(portal, agent, proxy, prometheus)
    finally:
        for process in reversed(started):
            process.stop()


def test_prometheus_discovers_and_scrapes_portal_agent_and_proxy(fleet: Fleet) -> None:
    def all_up() -> list[dict] | None:
        targets = fleet.prometheus.active_targets()
        healthy = [t for t in targets if t["health"] == "up"]
        return targets if {t["labels"]["job"] for t in healthy} >= JOBS else None

    try:
        targets = wait_for(all_up, 90, "all three jobs up", fleet.prometheus.log)
    except AssertionError:
        states = [
            (t["scrapeUrl"], t["health"], t["lastError"]) for t in fleet.prometheus.active_targets()
        ]
        raise AssertionError(f"targets never all up: {states}") from None

    by_job = {t["labels"]["job"]: t for t in targets}
    assert by_job["spectr-portal"]["scrapeUrl"] == f"{fleet.portal.url}/metrics"
    assert by_job["spectr-agent"]["scrapeUrl"] == f"{fleet.agent.url}/metrics"
    assert by_job["spectr-agent"]["labels"]["instance"] == "agent-under-test"
    assert by_job["spectr-agent"]["labels"]["gpu_model"] == "none"
    proxy_metrics = f"http://127.0.0.1:{fleet.proxy.admin_port}/metrics"
    assert by_job["spectr-proxy"]["scrapeUrl"] == proxy_metrics


def test_promql_returns_series_of_each_component(fleet: Fleet) -> None:
    wanted = {
        "portal": 'spectr_hosts{job="spectr-portal", status="ready"}',
        "agent": 'spectr_host_memory_bytes{job="spectr-agent", instance="agent-under-test"}',
        "proxy": 'spectr_proxy_config_version{job="spectr-proxy"}',
    }

    for component, promql in wanted.items():
        result = wait_for(
            lambda q=promql: fleet.prometheus.query(q)["result"], 60, f"{component} series",
            fleet.prometheus.log,
        )  # fmt: skip
        assert result, component

    ready_hosts = fleet.prometheus.query(wanted["portal"])["result"]
    assert (
        float(ready_hosts[0]["value"][1]) >= 1.0
    )  # the Spectr node, and the agent host once probed
    up = fleet.prometheus.query('up{job=~"spectr-.*"}')["result"]
    assert {r["metric"]["job"]: r["value"][1] for r in up} == dict.fromkeys(JOBS, "1")


def test_every_dashboard_query_is_valid_promql_on_real_data(fleet: Fleet) -> None:
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$host", ".*")
                fleet.prometheus.query(expr)  # asserts status == success
