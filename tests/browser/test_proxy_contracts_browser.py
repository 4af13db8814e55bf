"""The gateway page lists each proxy with the config contract it speaks, and says in words why
one of another major is refused (issue 19), at desktop and phone width."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import console_errors, log_in, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_a_refused_proxy_is_shown_with_the_reason(page: Page, portal: Portal) -> None:
    log_in(page, portal)
    fetch = f"{portal.url}/api/v1/proxy/config"
    served = page.request.get(fetch, headers={"X-Spectr-Proxy-Metrics": "10.0.4.7:9180",
                                               "Spectr-Proxy-Contract": "1.1"})  # fmt: skip
    refused = page.request.get(fetch, headers={"X-Spectr-Proxy-Metrics": "10.0.4.8:9180",
                                                "Spectr-Proxy-Contract": "2.0"})  # fmt: skip
    assert served.status == 200 and refused.status == 409

    with console_errors(page) as errors:
        page.goto(f"{portal.url}/gateway")
        expect(page.locator("#proxies")).to_contain_text(
            "1 spectr-proxy process fetched its configuration"
        )
        expect(page.locator("#proxies")).to_contain_text("1 more was refused:")
        warning = page.locator(".incompatible-proxy")
        expect(warning).to_contain_text("10.0.4.8:9180")
        expect(warning).to_contain_text(
            "Incompatible proxy: it speaks config document contract 2.0, this portal serves 1.x."
        )
        rows = page.locator("#proxies tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("1.1")
        expect(rows.nth(1)).to_contain_text("2.0 refused")
        snap(page, "gateway-proxy-contracts")
    assert errors == []
