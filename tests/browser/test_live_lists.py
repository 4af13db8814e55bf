"""Lists that follow what exists without a reload, in Chromium against a `spectr run` of their
own and this machine's real Docker engine: a host's containers list gains the row of a container
started while it is open and loses the row of one removed (filters, order, ticked boxes and the
empty state hold); the Applications list gains and loses rows and host sections as applications
are created and forgotten, its search, sort and count still true for the rows it has now; the
Hosts list gains and loses the rows of hosts added and deleted, in the order the page asked for.

Screenshots go to tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal, running_portal
from tests.browser.pages import Api, console_errors, log_in, snap
from tests.support import docker_objects
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
made = docker_objects.made


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """This module's own portal: no application but the ones its tests create."""
    with running_portal(tmp_path_factory.mktemp("lists-instance"), SSE_HEARTBEAT_SECONDS="1") as on:
        yield on


def node_id(api: Api) -> int:
    api.page.goto(f"{api.portal.url}/apps")  # records the Spectr node on a fresh install
    return next(host["id"] for host in api.get("/hosts") if host["is_local"])


def mark_page(page: Page) -> None:
    """A mark that a reload would wipe: the changes below happen without one."""
    page.evaluate("() => { window.spectrNotReloaded = true; }")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("() => window.spectrNotReloaded === true"))


def names_listed(page: Page, rows: str) -> list[str]:
    return page.locator(rows).evaluate_all(
        "(rows) => rows.filter((row) => !row.hidden).map((row) => row.dataset.name)"
    )


def test_a_hosts_containers_list_adds_and_removes_rows(
    page: Page, portal: Portal, made: Made
) -> None:
    first = made.container("b-first")
    with console_errors(page) as errors:
        log_in(page, portal)
        node = node_id(Api(page, portal))
        # Only this test's containers: the engine is shared with other tests.
        page.goto(f"{portal.url}/hosts/{node}/containers?q={made.run}")
        rows = "#container-rows > tr[data-key]"
        expect(page.locator(rows)).to_have_count(1)
        mark_page(page)
        page.get_by_label(f"select {first.name}").check()
        expect(page.locator("#bulk-count")).to_have_text("1 selected")

        # Started by hand on the host, not through Spectr: the list follows the engine.
        second, third = made.container("c-second"), made.container("a-third")
        expect(page.locator(rows)).to_have_count(3)
        assert names_listed(page, rows) == [third.name, first.name, second.name]  # by name
        expect(page.locator("#containers-count")).to_contain_text("3 container(s) shown")
        expect(page.get_by_label(f"select {first.name}")).to_be_checked()  # still ticked
        expect(page.locator("#bulk-count")).to_have_text("1 selected")
        row = page.locator(f'tr[data-name="{second.name}"]')
        expect(row.get_by_role("link", name=second.name)).to_have_attribute(
            "href", f"/hosts/{node}/containers/{second.name}"
        )
        expect(row.locator(".badge")).to_have_text("running")
        snap(page, "live-containers-added")

        second.stop(timeout=0)  # a change of state replaces the row's cells
        expect(row.locator(".badge")).to_have_text("exited")
        first.remove(force=True)
        expect(page.locator(rows)).to_have_count(2)
        assert names_listed(page, rows) == [third.name, second.name]
        expect(page.locator("#bulk-count")).to_have_text("none selected")  # its box went with it
        expect(page.locator("#containers-count")).to_contain_text("2 container(s) shown")

        second.remove(force=True)
        third.remove(force=True)
        expect(page.locator(rows)).to_have_count(0)
        empty = page.locator("#container-rows > tr[data-empty]")
        expect(empty).to_be_visible()
        expect(empty).to_contain_text("No containers match these filters.")
        expect(page.locator(".bulk-bar")).to_be_hidden()  # nothing to act on
        snap(page, "live-containers-emptied")

        made.container("d-fourth")  # and back from empty
        expect(page.locator(rows)).to_have_count(1)
        expect(empty).to_be_hidden()
        expect(page.locator(".bulk-bar")).to_be_visible()
        assert not_reloaded(page)
    assert errors == []


def recorded_app(api: Api, name: str, host_id: int) -> dict[str, Any]:
    """An application Spectr records without deploying it (no operation runs)."""
    return api.post("/apps", {"name": name, "host_id": host_id, "kind": "container",
                              "container": {"image": "busybox:1"}, "deploy": False})  # fmt: skip


def test_the_applications_list_adds_and_removes_rows_and_sections(
    page: Page, portal: Portal
) -> None:
    tag = uuid.uuid4().hex[:6]
    with console_errors(page) as errors:
        log_in(page, portal)
        api = Api(page, portal)
        node = node_id(api)
        expect(page.locator("#no-apps")).to_be_visible()
        mark_page(page)

        # The node's first application: its section comes, the empty state goes.
        red = recorded_app(api, f"red-{tag}", node)
        section = page.locator(f"#host-{node}")
        expect(section).to_be_visible()
        expect(page.locator("#no-apps")).to_have_count(0)
        rows = f"#apps-of-{node} > tr[data-key]"
        expect(page.locator(rows)).to_have_count(1)
        expect(section.get_by_role("link", name=f"red-{tag}")).to_be_visible()

        green = recorded_app(api, f"green-{tag}", node)
        expect(page.locator(rows)).to_have_count(2)
        tools = page.locator(".table-tools")
        expect(tools).to_be_visible()  # two rows: search and sort now have something to do
        expect(tools).to_contain_text("2 applications")

        # Sorted by name, descending, then searched: new rows take their place in both.
        section.get_by_role("button", name="Application").click()
        section.get_by_role("button", name="Application").click()
        expect(section.locator("th[aria-sort=descending]")).to_have_count(1)
        blue = recorded_app(api, f"blue-{tag}", node)
        expect(tools).to_contain_text("3 applications")
        shown = page.locator(f"{rows}:not([hidden]) td:first-child a")
        expect(shown).to_have_text([f"red-{tag}", f"green-{tag}", f"blue-{tag}"])
        search = tools.get_by_label("Search applications")
        search.fill("gre")
        expect(shown).to_have_text([f"green-{tag}"])
        grey = recorded_app(api, f"grey-{tag}", node)
        expect(tools).to_contain_text("2 of 4 applications")
        expect(shown).to_have_text([f"grey-{tag}", f"green-{tag}"])
        snap(page, "live-apps-added")

        api.delete(f"/apps/{green['id']}")
        expect(tools).to_contain_text("1 of 3 applications")
        expect(shown).to_have_text([f"grey-{tag}"])
        search.fill("")
        expect(shown).to_have_text([f"red-{tag}", f"grey-{tag}", f"blue-{tag}"])

        for app in (red, grey, blue):
            api.delete(f"/apps/{app['id']}")
        expect(section).to_have_count(0)  # the host's last application went: so did its section
        expect(page.locator("#no-apps")).to_be_visible()
        snap(page, "live-apps-emptied")
        assert not_reloaded(page)
    assert errors == []


def test_the_hosts_list_adds_and_removes_rows(page: Page, portal: Portal) -> None:
    tag = uuid.uuid4().hex[:6]
    with console_errors(page) as errors:
        log_in(page, portal)
        api = Api(page, portal)
        page.goto(f"{portal.url}/hosts?q={tag}&sort=name&order=desc")
        rows = "#host-rows > tr[data-key]"
        empty = page.locator("#host-rows > tr[data-empty]")
        expect(empty).to_contain_text("No hosts match these filters.")
        bootstrap = page.get_by_role("button", name="Bootstrap selected")
        expect(bootstrap).to_be_hidden()
        mark_page(page)

        added = {}
        for name in (f"alpha-{tag}", f"gamma-{tag}", f"beta-{tag}"):
            added[name] = api.post("/hosts", {"name": name, "address": "10.99.0.8",
                                              "ssh_password": "not-used"})  # fmt: skip
        listed = page.locator(f"{rows} td:nth-child(2) a")
        expect(listed).to_have_text([f"gamma-{tag}", f"beta-{tag}", f"alpha-{tag}"])  # desc
        expect(empty).to_have_count(0)
        expect(page.locator("#hosts-total")).to_have_text("3 hosts")
        expect(bootstrap).to_be_visible()
        page.locator(f'{rows} input[value="{added[f"gamma-{tag}"]["id"]}"]').check()
        snap(page, "live-hosts-added")

        api.delete(f"/hosts/{added[f'beta-{tag}']['id']}")
        expect(listed).to_have_text([f"gamma-{tag}", f"alpha-{tag}"])
        expect(page.locator(f"{rows} input:checked")).to_have_count(1)  # the ticked box holds
        expect(page.locator("#hosts-total")).to_have_text("2 hosts")
        for name in (f"gamma-{tag}", f"alpha-{tag}"):
            api.delete(f"/hosts/{added[name]['id']}")
        expect(page.locator(rows)).to_have_count(0)
        expect(empty).to_contain_text("No hosts match these filters.")
        expect(bootstrap).to_be_hidden()
        assert not_reloaded(page)
    assert errors == []
