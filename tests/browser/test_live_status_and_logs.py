"""Issue 13, findings 4, 6 and the rest of 22, in Chromium against a `spectr run` of their own
and this machine's real Docker engine: status that follows a real crash loop without Refresh
and a container.restarting event that closes once the container runs steadily; the Spectr
node's facts and containers; live logs that wait for a container, outlive the engine's read
timeout, resume without repeating a line and say why they ended; published ports as links;
no empty host cards on Applications.

The portal runs with a 1 s heartbeat, a 2 s engine read timeout, events every 2 s and "steady"
after 8 s, and health sweeps every 5 s (the least the setting allows), so nothing waits long.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from playwright.sync_api import Page, expect

from agent.tests.harness import free_port
from tests.browser.conftest import Portal, running_portal
from tests.browser.pages import Api, log_in, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
BUILD_BASE = Path(__file__).resolve().parents[1] / "images" / "build-base.sh"
READ_TIMEOUT_S = 2
STEADY_S = 8
# Crashes at once until /ok exists in its file system, then runs for good.
CRASH_UNTIL_FIXED = "[ -f /ok ] && exec sleep 3600; echo crashing; exit 1"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """This module's own portal, with short heartbeats, timeouts and event intervals."""
    settings = {
        "SSE_HEARTBEAT_SECONDS": "1",
        "LOG_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT_S),
        "MONITORING_EVENT_INTERVAL_SECONDS": "2",
        "MONITORING_STEADY_SECONDS": str(STEADY_S),
    }
    with running_portal(tmp_path_factory.mktemp("live-instance"), **settings) as started:
        yield started


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run([str(BUILD_BASE)], capture_output=True, text=True, check=True)
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    """This machine's engine; what the test ran there, or Spectr deployed for it, goes after."""
    client = docker.from_env()
    yield client
    for found in (
        client.containers.list(all=True, filters={"label": "spectr.test=live"}),
        client.containers.list(all=True, filters={"name": "spectr-test-crashloop-"}),
    ):
        for container in found:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
    client.close()


@pytest.fixture
def api(page: Page, portal: Portal) -> Api:
    log_in(page, portal)
    api = Api(page, portal)
    api.patch("/settings", {"health_check_interval_seconds": 5})
    return api


def unique(what: str) -> str:
    return f"spectr-test-{what}-{uuid.uuid4().hex[:6]}"


def node_id(api: Api) -> int:
    api.page.goto(f"{api.portal.url}/apps")  # records the Spectr node on a fresh install
    return next(host["id"] for host in api.get("/hosts") if host["is_local"])


def recorded_app(api: Api, name: str, image: str) -> dict[str, Any]:
    """An application Spectr knows of, whose container the test starts by hand."""
    return api.post("/apps", {"name": name, "host_id": node_id(api), "kind": "container",
                              "container": {"image": image}, "deploy": False})  # fmt: skip


def run(engine: docker.DockerClient, image: str, name: str, script: str, **options: Any) -> Any:
    return engine.containers.run(image, ["sh", "-c", script], name=name, detach=True,
                                 labels={"spectr.test": "live"}, **options)  # fmt: skip


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.5)


def restarting_events(api: Api, name: str, state: str) -> list[dict[str, Any]]:
    events = api.get(f"/monitoring/events?kind=container.restarting&state={state}")
    return [event for event in events if event["subject"] == f"spectr-node/{name}"]


def mark_page(page: Page) -> None:
    """A mark that a reload would wipe: the page changes below happen without one."""
    page.evaluate("() => { window.spectrNotReloaded = true; }")


def still_marked(page: Page) -> bool:
    return bool(page.evaluate("() => window.spectrNotReloaded === true"))


# 4 ------------------------------------------------------------------------------------------
def test_a_crash_loop_shows_live_and_its_event_closes_once_it_runs_steadily(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name = unique("crashloop")
    created = api.post("/apps", {
        "name": name, "host_id": node_id(api), "kind": "container",
        "container": {"image": image, "command": ["sh", "-c", CRASH_UNTIL_FIXED],
                      "restart_policy": "always", "pull": "never"},
    })  # fmt: skip
    operation = created["last_operation_id"]
    wait_for(lambda: api.get(f"/operations/{operation}")["state"] in ("succeeded", "failed"),
             300, "end of the deploy")  # fmt: skip
    assert api.get(f"/operations/{operation}")["state"] == "succeeded"

    page.goto(f"{portal.url}/apps/{created['id']}")
    mark_page(page)
    status = page.locator("#app-status .badge")
    expect(status).to_have_text("restarting", timeout=60_000)
    wait_for(lambda: restarting_events(api, name, "open"), 30, "an open container.restarting")
    expect(page.locator("#app-log")).to_contain_text("crashing")
    snap(page, "live-app-crash-loop")
    page.goto(f"{portal.url}/monitoring")
    expect(page.locator("#open-events")).to_contain_text(f"spectr-node/{name}")

    # The operator fixes it and restarts it by hand; the open page follows.
    page.goto(f"{portal.url}/apps/{created['id']}")
    mark_page(page)
    container = engine.containers.get(name)
    container.put_archive("/", _tar_with("ok"))
    restarted = time.monotonic()
    container.restart(timeout=0)
    expect(status).to_have_text("running", timeout=30_000)
    expect(page.locator("#app-actions")).to_contain_text("Stop")
    assert still_marked(page)
    if time.monotonic() - restarted < STEADY_S - 1:  # seen running, but not steady yet
        assert restarting_events(api, name, "open")
    wait_for(lambda: restarting_events(api, name, "resolved"), 60, "the event to close")
    assert time.monotonic() - restarted >= STEADY_S


def test_the_spectr_node_shows_its_facts_and_containers(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name = unique("on-node")
    run(engine, image, name, "sleep 3600")
    node = node_id(api)

    page.goto(f"{portal.url}/hosts")
    os_cell = page.locator("#hosts tr", has_text="spectr-node").locator("td").nth(4)
    wait_for(lambda: os_cell.inner_text() != "—" or page.reload(), 60, "the node's OS")
    row = page.locator("#hosts tr", has_text="spectr-node")
    expect(row.locator("td").nth(6)).to_have_text(re.compile(r"^\d+\.\d GiB$"))  # memory
    page.goto(f"{portal.url}/hosts/{node}")
    facts = page.locator("#facts")
    expect(facts).to_contain_text("logical CPUs")
    expect(facts.locator("dt:text('OS') + dd")).not_to_be_empty()
    expect(facts.locator("dt:text('Docker') + dd")).not_to_contain_text("not running")
    # The list is what the last sweep saw (it may have caught the container just created).
    wait_for(lambda: _reloaded_shows(page, name, "running"), 30, f"{name} running on the node")
    snap(page, "live-node-host")


def _reloaded_shows(page: Page, name: str, state: str) -> bool:
    row = page.locator("#containers tr", has_text=name)
    if row.count() and state in row.inner_text():
        return True
    page.reload()
    return False


# 6 ------------------------------------------------------------------------------------------
def test_the_log_waits_for_a_container_then_follows_it_through_stops_without_repeats(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name = unique("later")
    app = recorded_app(api, name, image)
    page.goto(f"{portal.url}/apps/{app['id']}")
    mark_page(page)
    log, state = page.locator("#app-log"), page.locator("#app-log-state")
    expect(log).to_contain_text("No container yet; waiting")
    expect(state).to_contain_text("No container yet")
    snap(page, "live-app-log-waiting")

    container = run(engine, image, name, "echo started-$$; sleep 3; echo bye")
    expect(log).to_contain_text("bye", timeout=60_000)
    expect(log).to_contain_text("The container stopped (exit code 0)")
    container.start()  # a second run: the page asks again after the end and goes on
    expect(log.locator("span", has_text="bye")).to_have_count(2, timeout=60_000)
    text = log.inner_text()
    assert text.count("started-") == 2 and text.count("bye") == 2  # nothing shown twice
    assert still_marked(page)
    snap(page, "live-app-log-restarts")


def test_a_quiet_container_keeps_its_log_stream_past_the_read_timeout(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name = unique("quiet")
    app = recorded_app(api, name, image)
    quiet_s = 4 * READ_TIMEOUT_S
    run(engine, image, name, f"echo before; sleep {quiet_s}; echo after-silence; sleep 3600")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    page.goto(f"{portal.url}/apps/{app['id']}")
    log = page.locator("#app-log")
    expect(log).to_contain_text("before")

    url = f"{portal.url}/api/v1/apps/{app['id']}/logs?follow=1&tail=10"
    client = httpx.Client(cookies=cookies, timeout=httpx.Timeout(5.0))  # heartbeats or it fails
    opened = time.monotonic()
    with client, client.stream("GET", url) as response:
        body = _read_until(response, "after-silence", 3 * quiet_s)
    quiet_for = time.monotonic() - opened
    assert quiet_for >= 2 * READ_TIMEOUT_S  # it outlived the engine's read timeout, twice
    assert body.count(": heartbeat\n") >= int(quiet_for) - 2
    assert body.count('"data": "before\\n"') == 1 and "event: end" not in body

    expect(log).to_contain_text("after-silence", timeout=10_000)
    assert log.inner_text().count("before") == 1  # the reopened engine stream repeated nothing
    expect(page.locator("#app-log-state")).to_have_text("live")


def _read_until(response: httpx.Response, marker: str, timeout: float) -> str:
    body, deadline = "", time.monotonic() + timeout
    for text in response.iter_text():
        body += text
        if marker in body or time.monotonic() > deadline:
            break
    return body


# 22 (rest) ----------------------------------------------------------------------------------
def test_published_ports_are_links_and_hosts_without_apps_get_no_card(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name, port = unique("web"), free_port()
    app = recorded_app(api, name, image)
    run(engine, image, name, "cd /tmp && exec python3 -m http.server 8000",
        ports={"8000/tcp": ("127.0.0.1", port)})  # fmt: skip
    spare = api.post("/hosts", {"name": unique("spare"), "address": "10.99.0.7",
                                "ssh_password": "not-used"})  # fmt: skip

    page.goto(f"{portal.url}/apps/{app['id']}")
    link = page.locator("#app-ports a")
    expect(link).to_have_text(f"127.0.0.1:{port} → 8000/tcp", timeout=30_000)
    href = link.get_attribute("href")
    assert href == f"http://127.0.0.1:{port}/"
    assert page.request.get(href).ok  # the link reaches the container's server
    snap(page, "live-app-ports")

    page.goto(f"{portal.url}/hosts/{node_id(api)}")
    expect(page.locator("#containers tr", has_text=name).locator("a")).to_have_attribute(
        "href", href
    )
    page.goto(f"{portal.url}/apps")
    expect(page.locator(".host-apps")).to_have_count(1)  # the node's; none for the spare host
    without = page.locator("#hosts-without-apps")
    expect(without).to_contain_text(f"{spare['name']} (not bootstrapped yet)")
    expect(without).to_contain_text("Deploy to it with New application below")
    expect(page.locator(".host-apps tr", has_text=name)).to_contain_text(f"127.0.0.1:{port}")
    snap(page, "live-apps-index")


def _tar_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()
