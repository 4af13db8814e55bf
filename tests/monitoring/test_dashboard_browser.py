"""The home page dashboard in a real browser shows live fleet data from real hosts.

A real `spectr run`, the Spectr node itself (ensure_local_host), and a host whose real agent
(TLS, certificate from the portal's own CA) the portal's health checks probe. The page is
loaded once; everything after that arrives through the fragment it polls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agent.tests.harness import AgentProcess
from tests.monitoring.fleet_setup import issue_agent_certificate, register_hosts
from tests.monitoring.processes import PortalProcess

# The browser fixtures (page, browser_context, ...) come from tests/monitoring/conftest.py.

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PASSWORD = "dashboard-test-password"


@pytest.fixture
def live_fleet(tmp_path: Path) -> Iterator[tuple[PortalProcess, AgentProcess]]:
    instance = tmp_path / "instance"
    instance.mkdir()
    portal = PortalProcess(
        instance, SPECTR_ADMIN_PASSWORD=PASSWORD, SPECTR_MONITORING_EVENT_INTERVAL_SECONDS="1"
    )
    agent = AgentProcess(tmp_path, issue_agent_certificate(instance))
    try:
        portal.cli("init")
        agent.start()
        # Before `spectr run`: its health-check ticker reads the 5 s interval from the start.
        register_hosts(instance, agent)
        portal.serve()
        yield portal, agent
    finally:
        agent.stop()
        portal.stop()


def host_row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#overview-hosts tr[data-host="{name}"]')


def test_dashboard_shows_real_hosts_and_follows_an_agent_going_away(
    page: Page, live_fleet: tuple[PortalProcess, AgentProcess]
) -> None:
    portal, agent = live_fleet
    page.goto(f"{portal.url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    # A marker that survives only while the page is not reloaded: updates must come live.
    page.evaluate("window.__loadedOnce = true")

    expect(host_row(page, "spectr-node")).to_contain_text("127.0.0.1")
    expect(host_row(page, "spectr-node")).to_contain_text("ready")
    # The portal's health check reaches the real agent: new -> ready, without a reload.
    expect(host_row(page, "agent-under-test").locator(".badge")).to_have_text(
        "ready", timeout=30_000
    )
    expect(page.locator("#tile-hosts .tile-value")).to_have_text("2")
    expect(page.locator("#overview-alerts")).to_contain_text("Nothing open.")

    agent.stop()

    expect(host_row(page, "agent-under-test").locator(".badge")).to_have_text(
        "unreachable", timeout=45_000
    )
    expect(page.locator("#overview-alerts")).to_contain_text("host.unreachable", timeout=15_000)
    expect(page.locator("#tile-alerts .tile-value")).to_have_text("1")
    assert page.evaluate("window.__loadedOnce") is True
