"""The overview lists each project's quotas beside their use: GPUs, GPU memory, applications and
gateway tokens today and this month (issue 16), at desktop and phone width."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import Api, console_errors, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_the_overview_shows_each_projects_quotas_and_their_use(
    page: Page, portal: Portal, api: Api
) -> None:
    name = f"team-{uuid.uuid4().hex[:6]}"
    api.post("/projects", {"name": name, "gpu_limit": 8, "gpu_memory_limit_mib": 655360,
                           "gateway_tokens_per_day_limit": 2_000_000,
                           "gateway_rpm_limit": 600})  # fmt: skip
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/")
        row = page.locator(f'#project-usage tr[data-project="{name}"]')
        expect(row.locator('[data-quota="gpus"]')).to_have_text("0 / 8")
        expect(row.locator('[data-quota="gpu_memory_mib"]')).to_have_text("0 MiB / 655,360 MiB")
        expect(row.locator('[data-quota="applications"]')).to_have_text("0 / no limit")
        expect(row.locator('[data-quota="gateway_tokens_per_day"]')).to_have_text("0 / 2,000,000")
        expect(row.locator('[data-quota="gateway_tokens_per_month"]')).to_have_text("0 / no limit")
        snap(page, "overview-project-quotas")
    assert errors == []
