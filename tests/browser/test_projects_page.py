"""Issue 16 in a real browser against a real `spectr run`: the Projects page. A global admin
creates a project, adds a member with a role, sets the project's quotas, and sees its use;
the project is in the navigation and on its list. Screenshots go to tests/.artifacts/screens/.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import Api, console_errors, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_an_admin_creates_a_project_adds_a_member_and_sets_quotas(
    page: Page, portal: Portal, api: Api
) -> None:
    page.goto(portal.url)  # signed in as the admin by the `api` fixture
    member = f"member-{uuid.uuid4().hex[:6]}"
    api.post("/users", {"username": member, "password": "member password 1", "role": "viewer"})
    name = f"team-{uuid.uuid4().hex[:6]}"
    with console_errors(page) as errors:
        page.get_by_role("link", name="Projects", exact=True).click()
        expect(page.locator("h1")).to_have_text("Projects")
        form = page.locator("#new-project")
        form.get_by_label("Name").fill(name)
        form.get_by_label("Description").fill("Inference team")
        form.get_by_label("GPU quota").fill("4")
        form.get_by_role("button", name="Create project").click()
        expect(page.locator("h1")).to_contain_text(name)
        expect(page.locator("#usage-gpus")).to_contain_text("0 of 4")

        adding = page.locator("#add-member")
        adding.get_by_label("User name").fill(member)
        adding.get_by_label("Role").select_option("operator")
        adding.get_by_role("button", name="Add member").click()
        row = page.locator(f'#project-members tr[data-member="{member}"]')
        expect(row.locator("select")).to_have_value("operator")

        settings = page.locator("#project-settings")
        settings.get_by_label("GPU quota").fill("8")
        settings.get_by_label("Application quota").fill("3")
        settings.get_by_label("GPU memory quota (MiB)").fill("163840")
        settings.get_by_label("Gateway tokens per day").fill("1000000")
        settings.get_by_label("GPUs per model").fill("NVIDIA H100 80GB HBM3 = 4")
        settings.get_by_role("button", name="Save").click()
        expect(page.locator("#usage-gpus")).to_contain_text("0 of 8")
        expect(page.locator("#usage-applications")).to_contain_text("0 of 3")
        expect(page.locator("#usage-gpu_memory_mib")).to_contain_text("0 MiB of 163,840 MiB")
        expect(page.locator("#usage-gateway_tokens_per_day")).to_contain_text("0 of 1,000,000")
        per_model = page.locator('[data-gpu-model="NVIDIA H100 80GB HBM3"]')
        expect(per_model).to_contain_text("0 of 4")
        snap(page, "project-detail")

        page.get_by_role("link", name="Projects", exact=True).click()
        listed = page.locator(f'#projects tr[data-project="{name}"]')
        expect(listed).to_contain_text("0 / 8")
        expect(listed).to_contain_text("0 / 3")
        snap(page, "projects")
    assert not errors, errors

    project = next(p for p in api.get("/projects") if p["name"] == name)
    assert (project["gpu_limit"], project["application_limit"]) == (8, 3)
    assert project["gpu_memory_limit_mib"] == 163840
    assert project["gateway_tokens_per_day_limit"] == 1_000_000
    assert project["gpu_model_limits"] == {"NVIDIA H100 80GB HBM3": 4}
    members = api.get(f"/projects/{project['id']}/members")
    assert {(m["username"], m["role"]) for m in members} == {(member, "operator")}
