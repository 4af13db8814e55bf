"""Lists as tables a person sorts, searches and pages; flash messages as toasts; the dark theme.

Long lists (hosts, operations, audit) are sorted and paged by the server: the links keep the
search and the filters. Short ones are sorted and searched in the page. Screenshots go to
tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import Api, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n"
BACKGROUND = "getComputedStyle(document.body).backgroundColor"


def unique(what: str) -> str:
    return f"{what}{uuid.uuid4().hex[:6]}"


def name_cells(page: Page, table: str) -> Locator:
    return page.locator(f"{table} tbody tr:visible td:nth-child(2)")


def row_names(page: Page, table: str) -> list[str]:
    return name_cells(page, table).all_inner_texts()


def test_hosts_are_searched_sorted_and_paged_by_the_server(
    page: Page, portal: Portal, api: Api
) -> None:
    prefix = unique("fleet")
    made = [
        api.post(
            "/hosts",
            {
                "name": f"{prefix}-{number:02d}",
                "address": f"10.98.0.{number + 1}",
                "ssh_private_key": KEY,
            },
        )
        for number in range(53)  # more than a page of 50
    ]
    try:
        check_hosts_list(page, portal, prefix)
    finally:  # the portal is shared: other tests look for hosts on the API's first page
        for host in made:
            api.delete(f"/hosts/{host['id']}")


def check_hosts_list(page: Page, portal: Portal, prefix: str) -> None:

    page.goto(f"{portal.url}/hosts")
    page.get_by_label("Search").fill(prefix)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(f"q={prefix}"))  # not the unfiltered page's pager
    expect(page.locator(".pager")).to_contain_text("53 hosts")  # below the rows: they are parsed
    expect(page.locator(".pager")).to_contain_text("page 1 of 2")
    names = row_names(page, "#hosts")
    assert names == sorted(names) and names[0] == f"{prefix}-00" and len(names) == 50
    expect(page.locator("#hosts th[aria-sort]")).to_have_attribute("aria-sort", "ascending")

    # Sorting by name the other way round keeps the search; the next page keeps both. A click
    # on a link returns once the next page has started loading, not once its rows are parsed:
    # the rows are waited for (a read at once found none in a CI run).
    page.locator("#hosts th", has_text="Name").get_by_role("link").click()
    expect(page.locator("#hosts th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    expect(name_cells(page, "#hosts").first).to_have_text(f"{prefix}-52")
    page.get_by_role("link", name="next →").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(name_cells(page, "#hosts")).to_have_text([f"{prefix}-{n:02d}" for n in (2, 1, 0)])
    assert page.get_by_label("Search").input_value() == prefix
    snap(page, "hosts-searched-sorted-page-2")

    # A search that matches nothing says so, and a stale sort key falls back to the default.
    page.goto(f"{portal.url}/hosts?q=no-such-host-{prefix}&sort=nonsense")
    expect(page.locator("#hosts tbody")).to_contain_text("No hosts match these filters.")
    expect(page.locator(".pager")).to_contain_text("0 hosts")


def test_operations_sort_by_a_column_header(page: Page, portal: Portal, api: Api) -> None:
    target = unique("sorted-op")
    for seconds in (0, 0, 0):
        api.post("/operations", {"kind": "sleep", "params": {"seconds": seconds}, "target": target})
    page.goto(f"{portal.url}/operations?q={target}")
    expect(page.locator(".pager")).to_contain_text("3 operations")
    created = page.locator("#operations th", has_text="Created")
    expect(created).to_have_attribute("aria-sort", "descending")  # newest first by default
    stamps = page.locator("#operations tbody time").evaluate_all(
        "times => times.map(t => t.getAttribute('title'))"
    )
    assert stamps == sorted(stamps, reverse=True)
    created.get_by_role("link").click()
    expect(created).to_have_attribute("aria-sort", "ascending")
    expect(page.locator(".pager")).to_contain_text("3 operations")  # below the rows: parsed
    again = page.locator("#operations tbody time").evaluate_all(
        "times => times.map(t => t.getAttribute('title'))"
    )
    assert again == sorted(stamps)


def test_short_tables_sort_and_search_in_the_page(page: Page, portal: Portal, api: Api) -> None:
    tag = unique("t")
    for name in ("zulu", "alpha", "mike"):
        api.post("/users", {"username": f"{name}-{tag}", "password": "a long enough password",
                            "role": "viewer"})  # fmt: skip
    page.goto(f"{portal.url}/admin/users")
    users = page.locator("#users")
    page.get_by_label("Search users").fill(tag)
    expect(page.locator(".table-tools")).to_contain_text("3 of")
    users.get_by_role("button", name="User").click()
    shown = users.locator("tbody tr:visible td:first-child").all_inner_texts()
    assert shown == [f"alpha-{tag}", f"mike-{tag}", f"zulu-{tag}"]
    expect(users.locator("th", has_text="User")).to_have_attribute("aria-sort", "ascending")
    users.get_by_role("button", name="User").click()
    shown = users.locator("tbody tr:visible td:first-child").all_inner_texts()
    assert shown == [f"zulu-{tag}", f"mike-{tag}", f"alpha-{tag}"]
    page.get_by_label("Search users").fill(f"mike-{tag}")
    expect(users.locator("tbody tr:visible")).to_have_count(1)
    snap(page, "users-searched")


def test_flash_messages_are_toasts_success_hides_error_stays(
    page: Page, portal: Portal, api: Api
) -> None:
    # The page's clock is driven by the test, so "hides itself after a few seconds" is checked
    # without waiting for them.
    page.clock.install()
    page.goto(f"{portal.url}/admin/users")
    name = unique("toast")
    form = page.locator("form[action$='/admin/users']")
    form.get_by_label("User name").fill(name)
    form.get_by_label("Password").fill("a long enough password")
    form.get_by_role("button", name="Create").click()
    toast = page.locator(".toast", has_text=f"User {name} created.")
    expect(toast).to_be_visible()
    expect(toast).to_have_attribute("role", "status")
    assert toast.evaluate("t => t.closest('[aria-live]').getAttribute('aria-live')") == "polite"
    assert page.locator("main .flash").count() == 0  # no banner inside the page any more
    snap(page, "toast-success", full_page=False)
    page.clock.run_for(10_000)
    expect(toast).to_be_hidden()

    form.get_by_label("User name").fill(name)  # taken: refused
    form.get_by_label("Password").fill("a long enough password")
    form.get_by_role("button", name="Create").click()
    error = page.locator(".toast.toast-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    snap(page, "toast-error", full_page=False)
    page.clock.run_for(60_000)
    expect(error).to_be_visible()  # an error waits for the person
    error.get_by_role("button", name="Dismiss this message").click()
    expect(error).to_be_hidden()


def test_dark_theme_follows_the_system_and_the_toggle_is_remembered(
    page: Page, portal: Portal, api: Api
) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto(f"{portal.url}/hosts")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")
    dark_background = page.evaluate(BACKGROUND)
    toggle = page.get_by_role("button", name="Light theme")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    expect(html).to_have_attribute("data-theme", "light")
    assert page.evaluate(BACKGROUND) != dark_background

    # The choice outlives the page and beats the system's preference.
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")
    page.get_by_role("button", name="Dark theme").click()
    page.emulate_media(color_scheme="light")
    page.goto(f"{portal.url}/operations")
    expect(html).to_have_attribute("data-theme", "dark")
    assert page.evaluate(BACKGROUND) == dark_background
    snap(page, "operations-dark")


def test_host_tabs_scroll_inside_themselves_at_390px(page: Page, portal: Portal, api: Api) -> None:
    page.goto(f"{portal.url}/hosts")  # records the Spectr node
    node = next(h for h in api.get("/hosts?status=ready") if h["is_local"])
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{portal.url}/hosts/{node['id']}/images")
    tabs = page.get_by_role("navigation", name=re.compile("^Sections of"))
    assert tabs.evaluate("t => getComputedStyle(t).overflowX") == "auto"
    box = tabs.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Every tab can still be reached: the last one scrolls into view and opens.
    tabs.get_by_role("link", name="Networks").click()
    expect(page).to_have_url(re.compile(r"/networks$"))
    snap(page, "host-tabs-390")


def test_short_tables_show_25_rows_a_page(page: Page, portal: Portal, api: Api) -> None:
    tag = unique("p")
    for number in range(27):
        api.post("/users", {"username": f"pager-{tag}-{number:02d}",
                            "password": "a long enough password", "role": "viewer"})  # fmt: skip
    page.goto(f"{portal.url}/admin/users")
    page.get_by_label("Search users").fill(f"pager-{tag}")
    users = page.locator("#users tbody tr:visible")
    expect(users).to_have_count(25)
    pager = page.get_by_role("navigation", name="Pages of users")
    expect(pager).to_contain_text("page 1 of 2")
    pager.get_by_role("button", name="next →").click()
    expect(users).to_have_count(2)
    assert users.locator("td:first-child").all_inner_texts() == [
        f"pager-{tag}-25",
        f"pager-{tag}-26",
    ]
    expect(pager.get_by_role("button", name="next →")).to_be_disabled()
