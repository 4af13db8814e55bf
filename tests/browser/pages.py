"""Helpers of the browser tests: sign in, call the API as the signed-in user, watch the console,
and save screenshots of a page at a desktop and a phone size for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import ConsoleMessage, Page, Route

from tests.browser.conftest import ARTIFACTS, INTERFACES_CHANGED, Portal

SCREENS = ARTIFACTS / "screens"
VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}


def log_in(page: Page, portal: Portal) -> None:
    """Sign in as the portal's admin and wait until the browser has left the login page."""
    page.goto(f"{portal.url}/login")
    page.fill("input[name=username]", portal.username)
    page.fill("input[name=password]", portal.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def snap(page: Page, name: str, full_page: bool = True) -> None:
    """Screenshots of the whole page (or what the window shows of a very long one) at
    1440 x 900 and 390 x 844 into tests/.artifacts/screens/."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    for label, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENS / f"{name}-{label}.png"), full_page=full_page)
    if before:
        page.set_viewport_size(before)


def cut_chips(page: Page, selector: str = ".badge") -> list[str]:
    """The text of every status chip on the page that is cut (wider than its box, or broken
    over two lines). Measured in one go: live pages replace their chips whenever the server
    sends them anew, and a chip measured after that would be a detached one, 0 wide."""
    chips = page.locator(selector).evaluate_all(
        "(all) => all.map((e) => [e.innerText, e.scrollWidth, e.clientWidth,"
        " e.getClientRects().length])"
    )
    return [text for text, scroll, client, rects in chips if scroll > client or rects != 1]


class Api:
    """The REST API as the browser's signed-in user: its session cookie and CSRF token."""

    def __init__(self, page: Page, portal: Portal) -> None:
        self.page, self.portal = page, portal

    def _headers(self) -> dict[str, str]:
        token = self.page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        return {"X-CSRFToken": token, "Referer": self.portal.url + "/"}

    def get(self, path: str) -> Any:
        answer = self.page.request.get(f"{self.portal.url}/api/v1{path}")
        assert answer.ok, f"GET {path}: {answer.status} {answer.text()}"
        return answer.json()

    def post(self, path: str, body: dict[str, Any], status: int | None = None) -> Any:
        answer = self.page.request.post(
            f"{self.portal.url}/api/v1{path}", data=body, headers=self._headers()
        )
        if status is None:
            assert answer.ok, f"POST {path}: {answer.status} {answer.text()}"
        else:
            assert answer.status == status, f"POST {path}: {answer.status} {answer.text()}"
        return answer.json() if answer.text() else None

    def delete(self, path: str) -> None:
        answer = self.page.request.delete(
            f"{self.portal.url}/api/v1{path}", headers=self._headers()
        )
        assert answer.ok, f"DELETE {path}: {answer.status} {answer.text()}"

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        answer = self.page.request.patch(
            f"{self.portal.url}/api/v1{path}", data=body, headers=self._headers()
        )
        assert answer.ok, f"PATCH {path}: {answer.status} {answer.text()}"
        return answer.json()


@contextmanager
def console_errors(page: Page) -> Iterator[list[str]]:
    """Collect the console's errors and the page's uncaught exceptions while the block runs.

    Requests Chromium dropped because the machine's interfaces changed are left out.
    """
    seen: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and INTERFACES_CHANGED not in message.text:
            seen.append(f"{page.url}: {message.text}")

    def on_page_error(error: Exception) -> None:
        seen.append(f"{page.url}: uncaught {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield seen
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_page_error)


@contextmanager
def script_held(page: Page, pattern: str) -> Iterator[list[Route]]:
    """Hold the answer to the script `pattern` names while the block runs, then let it through.

    A deferred script runs after its page is drawn; on a busy portal a person can type or press
    before. Holding the script makes that window as long as the test needs. The block gets the
    requests held so far (one when the page asked for the script before the block ended).
    """
    held: list[Route] = []
    page.route(pattern, lambda route: held.append(route))
    yield held  # when the block fails, the script stays held: the test ends with the page
    for route in held:
        route.continue_()
    page.unroute(pattern)
