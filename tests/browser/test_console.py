"""The container console in Chromium against a real `spectr run` and this machine's real Docker
engine: connect from a container's page, type into xterm.js, read the shell's answer on the
screen, resize with the window, disconnect; the shell ends with the page's socket. The same
through a host's real spectr-agent over TLS: when the tab closes, the exec ends on the agent
and the engine, and the session's start and end are audited.

Screenshots go to tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from agent.tests.harness import AgentProcess
from portal.core.pki import ca_certificate_path, issue_server_certificate
from portal.core.secrets_box import load_secret_box
from tests.browser.conftest import Portal
from tests.browser.pages import Api, console_errors, log_in, snap
from tests.support import docker_objects
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
made = docker_objects.made


def sleeping(container, marker: str) -> bool:  # type: ignore[no-untyped-def]
    return any(marker in " ".join(process) for process in container.top()["Processes"])


def wait_until(done: Callable[[], bool], failure: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


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
        wait_until(lambda: sleeping(box, "sleep 4242"), "the shell never ran sleep")
        page.get_by_role("button", name="Disconnect").click()
        expect(state).to_have_text("Disconnected; the shell was ended.")
        expect(page.get_by_role("button", name="Connect", exact=True)).to_be_visible()
        # Connect shows once the socket has closed: that close did not reword it (CI saw
        # "The connection closed." here under load).
        expect(state).to_have_text("Disconnected; the shell was ended.")
        # the portal killed it when the socket closed
        wait_until(lambda: not sleeping(box, "sleep 4242"), "the shell outlived the console")

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


@pytest.fixture
def agent_host(page: Page, portal: Portal, tmp_path: Path) -> Iterator[tuple[int, AgentProcess]]:
    """A real spectr-agent over TLS (a certificate of the portal's own CA, a bearer token), and
    a host of the browser's portal that reaches this machine's engine through it, as bootstrap
    leaves one: its agent's address and token (encrypted with the portal's key) recorded."""
    assert portal.instance is not None
    cert_pem, key_pem = issue_server_certificate("agent", ["127.0.0.1"], str(portal.instance))
    (tmp_path / "agent.crt").write_text(cert_pem)
    (tmp_path / "agent.key").write_text(key_pem)
    agent = AgentProcess(tmp_path, (str(tmp_path / "agent.crt"), str(tmp_path / "agent.key")))
    agent.start()
    try:
        log_in(page, portal)
        name = f"relay-{uuid.uuid4().hex[:6]}"
        host = Api(page, portal).post(
            "/hosts", {"name": name, "address": "127.0.0.1", "ssh_password": "unused"}
        )
        token = load_secret_box(str(portal.instance), None).encrypt(agent.token)
        with sqlite3.connect(portal.instance / "spectr.db", timeout=10) as database:
            database.execute(
                "UPDATE hosts SET agent_url = ?, agent_token = ?, status = 'ready',"
                " bootstrapped_at = CURRENT_TIMESTAMP WHERE id = ?",
                (agent.url, token, host["id"]),
            )
        yield host["id"], agent
    finally:
        agent.stop()


def test_a_console_through_the_hosts_agent(
    browser_context: BrowserContext,
    page: Page,
    portal: Portal,
    agent_host: tuple[int, AgentProcess],
    made: Made,
) -> None:
    host_id, agent = agent_host
    box = made.container("console-agent")
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/hosts/{host_id}/containers/{box.name}")
        state = page.locator("#console-state")
        expect(state).to_have_text("not connected")
        page.get_by_role("button", name="Connect", exact=True).click()
        expect(state).to_have_text(re.compile(r"^connected: /bin/"))
        screen = page.locator("#console-screen .xterm-rows")
        page.keyboard.type("echo via-agent-$((40+2)); hostname")
        page.keyboard.press("Enter")
        expect(screen).to_contain_text("via-agent-42")
        expect(screen).to_contain_text(box.id[:12])  # the container's own hostname
        snap(page, "console-through-agent")
        page.keyboard.type("exec sleep 4343")
        page.keyboard.press("Enter")
        wait_until(lambda: sleeping(box, "sleep 4343"), "the shell never ran sleep")
    assert errors == []

    other = browser_context.new_page()  # first: the last tab's end would end the browser's session
    page.close()  # the tab goes, and with it the console's socket
    wait_until(lambda: not sleeping(box, "sleep 4343"), "the shell outlived the tab")

    other.goto(f"{portal.url}/")
    api = Api(other, portal)
    target = f"host:{api.get(f'/hosts/{host_id}')['name']}/container:{box.name}"

    def audited() -> list[dict]:
        return api.get(f"/audit?action=host.container.console&target={target}")

    deadline = time.monotonic() + 30
    while len(records := audited()) < 2:
        assert time.monotonic() < deadline, f"no end of the session audited: {records}"
        time.sleep(0.2)
    end, start = records[0]["details"], records[1]["details"]
    assert start["phase"] == "start" and end["phase"] == "end"
    assert end["reason"] == "closed" and end["exec_id"] == start["exec_id"]
    assert records[0]["actor"] == portal.username
    # The agent ran the exec and says it is over; so does the engine itself.
    with agent.http(str(ca_certificate_path(str(portal.instance)))) as client:
        assert client.get(f"/v1/exec/{start['exec_id']}").json()["running"] is False
    assert box.client.api.exec_inspect(start["exec_id"])["Running"] is False
