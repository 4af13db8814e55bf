"""The web UI in a real browser: login, access control, and an operation's live log."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Portal

pytestmark = [pytest.mark.slow, pytest.mark.browser]
OPERATION_URL = re.compile(r"/operations/(?P<id>[0-9a-f-]{36})$")
SLEEP_SECONDS = 4  # 16 log lines: room for a slow page load on a busy machine


def log_in(page: Page, portal: Portal, password: str) -> None:
    page.goto(f"{portal.url}/login")
    page.fill("input[name=username]", portal.username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_anonymous_visit_to_operations_redirects_to_login(page: Page, portal: Portal) -> None:
    page.goto(f"{portal.url}/operations")

    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)operations"))
    expect(page.locator("input[name=password]")).to_be_visible()


def test_wrong_password_shows_the_error_and_stays_on_login(page: Page, portal: Portal) -> None:
    log_in(page, portal, "not-the-password")

    expect(page.locator(".flash.error")).to_have_text("Wrong user name or password.")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{portal.url}/operations")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_repeated_wrong_passwords_lock_sign_in_and_say_for_how_long(
    page: Page, portal: Portal
) -> None:
    # Another user name than the portal's: its lock must not keep the other tests out.
    guessed = Portal(portal.url, "someone-else", "irrelevant")
    for _ in range(6):
        log_in(page, guessed, "wrong-guess")
        expect(page.locator(".flash.error")).to_have_text("Wrong user name or password.")
    log_in(page, guessed, "wrong-guess")
    expect(page.locator(".flash.error")).to_have_text(
        re.compile(r"^Too many failed sign-ins\. Try again in \d+ s\.$")
    )
    expect(page.locator("input[name=username]")).to_have_value("someone-else")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "login-throttled.png"), full_page=True)


def test_sleep_operation_log_arrives_live_then_succeeds(page: Page, portal: Portal) -> None:
    log_in(page, portal, portal.password)
    page.goto(f"{portal.url}/operations")
    page.fill("#start-sleep input[name=seconds]", str(SLEEP_SECONDS))
    page.get_by_role("button", name="Start sleep operation").click()
    page.wait_for_url(OPERATION_URL)
    operation_id = OPERATION_URL.search(page.url)["id"]  # type: ignore[index]
    lines = page.locator("#op-log span")
    rendered = lines.count()  # lines the server put in the page before the browser got it

    # Two lines more than the page was served with can only have come over the live stream.
    page.wait_for_function(
        "([selector, wanted]) => document.querySelectorAll(selector).length >= wanted",
        arg=["#op-log span", rendered + 2],
        timeout=SLEEP_SECONDS * 1000,
    )
    still = page.request.get(f"{portal.url}/api/v1/operations/{operation_id}").json()
    assert still["state"] == "running", f"live lines must arrive while it runs, not after: {still}"
    expect(page.locator("#op-state")).not_to_have_text(re.compile("succeeded|failed"))

    expect(page.locator("#op-state")).to_have_text("succeeded", timeout=SLEEP_SECONDS * 5000)
    expect(lines.last).to_contain_text(f"slept {SLEEP_SECONDS:.2f} of {SLEEP_SECONDS} s")
    assert lines.count() >= SLEEP_SECONDS * 4  # the sleep kind logs one line per quarter second
