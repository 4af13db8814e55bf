"""The log viewer in Chromium against a real `spectr run` and this machine's real Docker engine:
on a container's page of the Spectr node (tail size, timestamps, wrap, search with highlight and
count, pause that keeps what is shown and resumes without a gap or a repeat, stdout and stderr
told apart, the .log download) and on an application's page (the same viewer and download).

Containers are made by the test (labelled, from the locally built base image) and removed
afterwards. Screenshots go to tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import Api, console_errors, log_in, snap
from tests.support import docker_objects
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
made = docker_objects.made
# 1200 numbered lines with one on stderr among them, then one more once the test creates
# /tmp/next. (Docker reads stdout and stderr from two pipes: where the stderr line lands among
# the others is up to the engine, so the test does not assert its place.)
SCRIPT = (
    "seq -f 'line-%g' 1 600; echo 'boom: disk full' >&2; seq -f 'line-%g' 601 1200; "
    "while [ ! -f /tmp/next ]; do sleep 0.2; done; echo written-while-paused; exec sleep 3600"
)
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} $")


def node_id(page: Page, portal: Portal) -> int:
    page.goto(f"{portal.url}/hosts")  # records the Spectr node on a fresh install
    return next(host["id"] for host in Api(page, portal).get("/hosts") if host["is_local"])


def wait_for_engine_log(container, text: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    """Until the engine itself has the line (what the page is compared with)."""
    deadline = time.monotonic() + timeout
    while text not in container.logs().decode():
        assert time.monotonic() < deadline, f"the container did not write {text!r}"
        time.sleep(0.2)


def fits_a_phone(page: Page, name: str) -> None:
    snap(page, name)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, name
    page.set_viewport_size({"width": 1440, "height": 900})


def test_the_log_viewer_of_a_container_on_the_spectr_node(
    page: Page, portal: Portal, made: Made, tmp_path: Path
) -> None:
    writer = made.container("logs", command=["sh", "-c", SCRIPT])
    wait_for_engine_log(writer, "line-1200")
    with console_errors(page) as errors:
        log_in(page, portal)
        page.goto(f"{portal.url}/hosts/{node_id(page, portal)}/containers/{writer.name}")
        log, state = page.locator("#container-log"), page.locator("#container-log-state")
        lines = log.locator("span.line")

        # The last 500 lines by default.
        expect(state).to_have_text("live")
        expect(lines).to_have_count(500)
        # (The stderr line may land after line-1200: compare the last stdout line.)
        expect(log.locator("span.line:not(.log-stderr)").last).to_have_text(
            "line-1200", use_inner_text=True
        )
        assert "line-600\n" not in log.inner_text()

        # Every line, stderr marked as such; then timestamps and no wrapping.
        page.get_by_label("Lines", exact=True).select_option("all")
        expect(lines).to_have_count(1201)
        # (The engine stamps stdout and stderr as it reads each pipe: the stderr line may come
        # first under load. The first stdout line is line-1.)
        expect(log.locator("span.line:not(.log-stderr)").first).to_have_text(
            "line-1", use_inner_text=True
        )
        stderr = log.locator("span.log-stderr")
        expect(stderr).to_have_count(1)
        expect(stderr).to_have_text("boom: disk full", use_inner_text=True)
        expect(stderr).to_have_attribute("title", "stderr")
        assert stderr.evaluate("(e) => getComputedStyle(e).borderLeftColor") != "rgba(0, 0, 0, 0)"
        expect(log.locator("time").first).to_be_hidden()
        page.get_by_label("Timestamps", exact=True).check()
        expect(log.locator("time").first).to_be_visible()
        expect(log.locator("time").first).to_have_text(STAMP)
        assert "wrap" in (log.get_attribute("class") or "")
        page.get_by_label("Wrap lines", exact=True).uncheck()
        assert log.evaluate("(e) => getComputedStyle(e).whiteSpace") == "pre"
        page.get_by_label("Wrap lines", exact=True).check()

        # Search: every match highlighted and counted; Enter walks them; only matching lines.
        page.get_by_label("Search", exact=True).fill("line-11")
        count = page.locator("[data-log-count]")
        expect(count).to_have_text("111 matches")  # line-11, line-110…119, line-1100…1199
        expect(log.locator("mark")).to_have_count(111)
        page.get_by_label("Search", exact=True).press("Enter")
        expect(count).to_have_text("1 of 111 matches")
        expect(log.locator("mark.current")).to_have_text("line-11")
        page.get_by_label("Only matching lines", exact=True).check()
        expect(log.locator("span.line:visible")).to_have_count(111)
        fits_a_phone(page, "log-viewer-search")
        page.get_by_label("Only matching lines", exact=True).uncheck()
        page.get_by_label("Search", exact=True).fill("")
        expect(count).to_have_text("")

        # Pause keeps what is shown; what the container writes meanwhile comes on Follow, once.
        page.get_by_label("Follow", exact=True).uncheck()
        expect(state).to_have_text("paused: 1201 lines shown; tick Follow to go on")
        writer.exec_run(["touch", "/tmp/next"])
        wait_for_engine_log(writer, "written-while-paused")
        expect(lines).to_have_count(1201)
        assert "written-while-paused" not in log.inner_text()
        page.get_by_label("Follow", exact=True).check()
        expect(log).to_contain_text("written-while-paused")
        expect(state).to_have_text("live")
        expect(lines).to_have_count(1202)
        expect(log.locator("span.line", has_text="line-1200")).to_have_count(1)
        fits_a_phone(page, "log-viewer-container")

        # The download: the lines chosen, with their times, as a .log file.
        with page.expect_download() as started:
            page.get_by_role("link", name="Download .log").click()
        download = started.value
        assert re.fullmatch(rf"{writer.name}-\d{{8}}T\d{{6}}Z\.log", download.suggested_filename)
        saved = tmp_path / "saved.log"
        download.save_as(saved)
        text = saved.read_text().splitlines()
        assert len(text) == 1202
        assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ", line) for line in text)
        messages = [line.split(" ", 1)[1] for line in text]
        # As on the page, the stderr line may come first under load: stdout's lines in order.
        assert messages.count("boom: disk full") == 1
        stdout = [message for message in messages if message != "boom: disk full"]
        assert stdout == [f"line-{n}" for n in range(1, 1201)] + ["written-while-paused"]
    assert errors == []


def test_the_application_page_has_the_same_viewer(
    page: Page, portal: Portal, made: Made, tmp_path: Path
) -> None:
    log_in(page, portal)
    api = Api(page, portal)
    name = made.name("app-logs")
    app = api.post("/apps", {"name": name, "host_id": node_id(page, portal), "kind": "container",
                             "container": {"image": docker_objects.base_image()},
                             "deploy": False})  # fmt: skip
    writer = made.client.containers.run(
        docker_objects.base_image(), ["sh", "-c", "echo hello-app; echo warn-app >&2; sleep 3600"],
        name=name, labels=made.labels, detach=True,
    )  # fmt: skip
    made.containers.append(writer)  # named as the application: it is the application's
    wait_for_engine_log(writer, "warn-app")
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/apps/{app['id']}")
        log = page.locator("#app-log")
        expect(log.locator("span.line")).to_have_count(2)
        expect(log.locator("span.log-stderr")).to_have_text("warn-app", use_inner_text=True)
        expect(page.locator("#app-log-state")).to_have_text("live")
        page.get_by_label("Search", exact=True).fill("APP")
        expect(page.locator("[data-log-count]")).to_have_text("2 matches")
        fits_a_phone(page, "log-viewer-app")
        with page.expect_download() as started:
            page.get_by_role("link", name="Download .log").click()
        saved = tmp_path / "app.log"
        started.value.save_as(saved)
        # (Each line of its stream, in the engine's time order: which pipe it read first is its own.)
        assert sorted(saved.read_text().splitlines()) == ["hello-app", "warn-app"]
        assert started.value.suggested_filename.startswith(f"{name}-")
        # No console on this page: a link to the container's, where it is.
        page.locator("#console-link").get_by_role("link").click()
        expect(page.locator("h1")).to_contain_text(name)
        expect(page.get_by_role("button", name="Connect", exact=True)).to_be_visible()
    assert errors == []
