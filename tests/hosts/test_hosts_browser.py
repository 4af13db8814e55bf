"""In a real browser: add a host, press Bootstrap, watch the log arrive, see the facts.

Debian's chromium drives a real `spectr run` (tests/browser harness), which bootstraps a
Docker-in-Docker SSH test host with ansible-runner.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal
from tests.support.testhosts import TestHost

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
HOST_URL = re.compile(r"/hosts/(?P<id>\d+)$")


@pytest.fixture
def fresh_host(make_test_host: Any) -> TestHost:
    return make_test_host("hosts-browser", dind=True, extra_ports=(7443,))


def test_add_a_host_bootstrap_it_and_see_its_facts(
    page: Page, portal: Portal, fresh_host: TestHost
) -> None:
    page.goto(f"{portal.url}/login")
    page.fill("input[name=username]", portal.username)
    page.fill("input[name=password]", portal.password)
    page.click("button[type=submit]")
    page.goto(f"{portal.url}/hosts/new")
    form = page.locator("#host-form")
    form.locator("input[name=name]").fill("browser-node")
    form.locator("input[name=address]").fill("127.0.0.1")
    form.locator("input[name=ssh_port]").fill(str(fresh_host.port))
    form.locator("input[name=ssh_user]").fill("ops")
    form.locator("input[name=agent_port]").fill(str(fresh_host.published_ports[7443]))
    form.locator("textarea[name=ssh_private_key]").fill(fresh_host.private_key_path.read_text())
    form.get_by_role("button", name="Add host").click()
    page.wait_for_url(HOST_URL)
    expect(page.locator("#facts")).to_contain_text("No facts yet")

    with page.expect_navigation():
        page.locator("#bootstrap").click()
    expect(page.locator("#operation")).to_be_visible()
    rendered = page.locator("#op-log span").count()
    # Lines beyond those the page was served with can only have come over the live stream.
    page.wait_for_function(
        "([selector, wanted]) => document.querySelectorAll(selector).length >= wanted",
        arg=["#op-log span", rendered + 5],
        timeout=120_000,
    )
    expect(page.locator("#op-state")).to_have_text("running")
    expect(page.locator("#op-log")).to_contain_text("TASK [")
    expect(page.locator("#op-state")).to_have_text("succeeded", timeout=600_000)

    page.reload()
    expect(page.locator("h1 .badge")).to_have_text("ready")
    expect(page.locator("#facts")).to_contain_text("Debian GNU/Linux")
    expect(page.locator("#facts")).to_contain_text("Docker")
    expect(page.locator("#host-key")).to_contain_text("SHA256:")
    expect(page.locator("#history")).to_contain_text("bootstrapping")
