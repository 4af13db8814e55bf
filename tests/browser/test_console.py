"""The container console in Chromium against a real `spectr run` and this machine's real Docker
engine: connect from a container's page, type into xterm.js, read the shell's answer on the
screen, resize with the window, disconnect; the shell ends with the page's socket.

Screenshots go to tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import Api, console_errors, log_in, snap
from tests.support import docker_objects
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
made = docker_objects.made


def sleeping(container, marker: str) -> bool:  # type: ignore[no-untyped-def]
    return any(marker in " ".join(process) for process in container.top()["Processes"])


def test_typing_into_a_containers_console(page: Page, portal: Portal, made: Made) -> None:
    box = made.container("console")
    with console_errors(page) as errors:
        log_in(page, portal)
        page.goto(f"{portal.url}/hosts")  # records the Spectr node on a fresh install
        node = next(h["id"] for h in Api(page, portal).get("/hosts") if h["is_local"])
        page.goto(f"{portal.url}/hosts/{node}/containers/{box.name}")
        state = page.locator("#console-state")
        expect(state).to_have_text("not connected")
        page.get_by_label("Shell", exact=True).select_option("sh")
        page.get_by_role("button", name="Connect", exact=True).click()
        expect(state).to_have_text("connected: /bin/sh")
        screen = page.locator("#console-screen .xterm-rows")
        expect(screen).to_contain_text("#")  # the prompt (root in the test image)

        page.keyboard.type("echo hi; echo sum-$((6*7))")
        page.keyboard.press("Enter")
        expect(screen).to_contain_text("sum-42")
        page.keyboard.type("stty size")
        page.keyboard.press("Enter")
        rows_cols = page.wait_for_function(
            "() => [...document.querySelectorAll('#console-screen .xterm-rows > div')]"
            ".map((row) => row.textContent.trim()).find((text) => /^\\d+\\s\\d+$/.test(text))"
        ).json_value()
        assert rows_cols and int(rows_cols.split()[1]) > 40  # the terminal's width, not 80 x 24
        snap(page, "console-container")

        page.keyboard.type("exec sleep 4242")
        page.keyboard.press("Enter")
        deadline = time.monotonic() + 30
        while not sleeping(box, "sleep 4242"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        page.get_by_role("button", name="Disconnect").click()
        expect(state).to_have_text("Disconnected; the shell was ended.")
        expect(page.get_by_role("button", name="Connect", exact=True)).to_be_visible()
        deadline = time.monotonic() + 30
        while sleeping(box, "sleep 4242"):  # the portal killed it when the socket closed
            assert time.monotonic() < deadline, "the shell outlived the console"
            time.sleep(0.2)

        # The shell exits by itself: the page says so, with its exit code.
        page.get_by_role("button", name="Connect", exact=True).click()
        expect(state).to_have_text("connected: /bin/sh")
        page.locator("#console-screen").click()
        page.keyboard.type("exit 5")
        page.keyboard.press("Enter")
        expect(state).to_have_text("The shell exited with code 5.")
        expect(screen).to_contain_text("— The shell exited with code 5. —")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        page.set_viewport_size({"width": 1440, "height": 900})
        snap(page, "console-exited")
    assert errors == []
