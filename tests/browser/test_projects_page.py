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


def test_a_host_admin_shares_a_host_with_another_project_then_moves_it_there(
    page: Page, portal: Portal, api: Api
) -> None:
    tag = uuid.uuid4().hex[:6]
    team = api.post("/projects", {"name": f"lab-{tag}"})["name"]
    # Never contacted: no agent, no bootstrap (the address is this machine's).
    host = api.post("/hosts", {"name": f"box-{tag}", "address": "127.0.0.1",
                               "ssh_password": "not-used"})  # fmt: skip
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/hosts/{host['id']}")
        card = page.locator("#host-projects")
        expect(card).to_contain_text("Owned by default")
        sharing = card.locator("#share-host")
        sharing.get_by_label("Share with project").fill(team)
        sharing.get_by_label("GPUs it may hold").fill("2")
        sharing.get_by_role("button", name="Share").click()
        row = page.locator(f'#host-share-list tr[data-share="{team}"]')
        expect(row).to_contain_text("2")
        snap(page, "host-shared")

        page.once("dialog", lambda dialog: dialog.accept())
        moving = page.locator("#move-host")
        moving.get_by_label("Move to project").select_option(team)
        moving.get_by_role("button", name="Move").click()
        expect(page.locator("#host-projects")).to_contain_text(f"Owned by {team}")
        # The share with the project it moved to has no more reason to be.
        expect(page.locator("#host-share-list")).to_have_count(0)
        snap(page, "host-moved")
    assert not errors, errors
    moved = api.get(f"/hosts/{host['id']}")["project_id"]
    assert moved == next(p["id"] for p in api.get("/projects") if p["name"] == team)
