"""A host's Docker resources in a real browser against a real `spectr run` on the real engine:
the Spectr node's containers (filters, a container's page with masked env, port links and live
stats, bulk stop and start) and its volumes, images and networks (remove with a confirmation).

Containers and volumes are made by the test (labelled, from the locally built base image) and
removed afterwards; nothing else on the shared engine is touched. Screenshots of each page go to
tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Dialog, Page, Request, expect

from agent.tests.harness import free_port
from tests.browser.conftest import Portal
from tests.browser.pages import console_errors, cut_chips, log_in, script_held, snap
from tests.support import docker_objects
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
made = docker_objects.made  # the fixture: Docker objects this test makes, removed afterwards
SECRET = "browser-secret-value-7f3a"


@pytest.fixture
def dialogs(page: Page) -> Iterator[list[str]]:
    """Accept every confirmation, keeping what it asked."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    yield asked
    page.remove_listener("dialog", accept)


def open_node(page: Page, portal: Portal) -> str:
    """Sign in, open the Spectr node from the hosts list; return its overview's URL."""
    log_in(page, portal)
    page.goto(f"{portal.url}/hosts")
    page.get_by_role("link", name="spectr-node").click()
    expect(page.locator("h1")).to_contain_text("spectr-node")
    return page.url


def snap_fitting(page: Page, name: str) -> None:
    """Screenshots at both sizes; on a phone the page is no wider than the phone (wide tables
    scroll inside themselves) and no status chip is cut."""
    snap(page, name)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, name
    assert not cut_chips(page), name
    page.set_viewport_size({"width": 1440, "height": 900})


def tab(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.get_by_role("navigation", name="Sections of spectr-node").get_by_role(
        "link", name=name, exact=True
    )


def row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tr[data-name="{name}"]')


def test_containers_list_a_container_page_and_bulk_stop_start(
    page: Page, portal: Portal, made: Made, dialogs: list[str]
) -> None:
    port, volume = free_port(), made.volume("web-data")
    web = made.container(
        "web", environment={"API_KEY": SECRET, "GREETING": "hello"},
        ports={"8080/tcp": ("127.0.0.1", port)}, volumes={volume: {"bind": "/data", "mode": "rw"}},
        command=["sh", "-c", "while true; do head -c 200000 /dev/urandom | md5sum >/dev/null; "
                              "sleep 0.2; done"],
    )  # fmt: skip
    other = made.container("other")
    with console_errors(page) as errors:
        open_node(page, portal)
        tab(page, "Containers").click()
        page.get_by_label("Name or image").fill(made.run)
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#containers tbody tr")).to_have_count(2)
        expect(row(page, web.name)).to_contain_text("running")
        expect(row(page, web.name).locator(f'a[href="http://127.0.0.1:{port}"]')).to_be_visible()
        snap_fitting(page, "host-containers")

        # A press before resources.js ran (it names the chosen containers in the question) sends
        # nothing: the script is held here until after the press.
        posts: list[str] = []

        def note_post(request: Request) -> None:
            if request.method == "POST":
                posts.append(request.url)

        page.on("request", note_post)
        with script_held(page, "**/static/js/resources.js") as held:
            page.reload(wait_until="commit")
            row(page, web.name).get_by_role("checkbox").check()
            page.get_by_role("button", name="Stop", exact=True).click()
            assert len(held) == 1 and dialogs == [] and posts == []
        expect(page.locator("#bulk-count")).to_have_text("1 selected")
        page.remove_listener("request", note_post)
        web.reload()
        assert posts == [] and web.status == "running"

        # Bulk stop, confirmed, then bulk start. The outcome is the flash message, or (when the
        # browser lost the answer to Docker's interface change) the notice that says so.
        row(page, web.name).get_by_role("checkbox").check()
        expect(page.locator("#bulk-count")).to_have_text("1 selected")
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(row(page, web.name)).to_contain_text("exited", timeout=30_000)
        expect(page.locator(".flash").first).to_contain_text(
            re.compile(f"Stopped 1 container\\(s\\): {web.name}|answer to that action was lost")
        )
        assert dialogs[-1] == f"Stop 1 container(s): {web.name}?"
        expect(row(page, other.name)).to_contain_text("running")
        web.reload()
        assert web.status == "exited"
        row(page, web.name).get_by_role("checkbox").check()
        page.get_by_role("button", name="Start", exact=True).click()
        expect(row(page, web.name)).to_contain_text("running", timeout=30_000)

        # The container's page: masked secret, plain value, port link, mounts.
        row(page, web.name).get_by_role("link", name=web.name).click()
        expect(page.locator("h1")).to_contain_text(web.name)
        env = page.locator("#env")
        expect(env.locator("tr", has_text="API_KEY")).to_contain_text("hidden")
        expect(env.locator("tr", has_text="GREETING")).to_contain_text("hello")
        assert SECRET not in page.content()
        link = page.locator("#ports").get_by_role("link", name=f"http://127.0.0.1:{port}")
        expect(link).to_have_attribute("href", f"http://127.0.0.1:{port}")
        expect(page.locator("#mounts")).to_contain_text(volume)
        expect(page.locator("#overview")).to_contain_text("sh -c 'while true; do head")

        # Live stats: samples arrive every few seconds and the charts move.
        stats = page.locator("#stats")
        expect(stats).to_have_attribute("data-samples", re.compile(r"^[2-9]|\d\d"), timeout=30_000)
        first = stats.locator("#chart-cpu polyline").get_attribute("points")
        expect(page.locator("#value-cpu")).to_have_text(re.compile(r"^\d+\.\d %$"))
        expect(page.locator("#value-memory")).to_contain_text("iB of ")
        expect(stats.locator("#chart-cpu polyline")).not_to_have_attribute(
            "points", first or "", timeout=30_000
        )
        assert len((stats.locator("#chart-network polyline").first.get_attribute("points") or
                    "").split()) >= 1  # fmt: skip
        snap_fitting(page, "host-container")
    assert errors == []


def test_volumes_images_and_networks_and_removing_a_volume(
    page: Page, portal: Portal, made: Made, dialogs: list[str]
) -> None:
    used, spare = made.volume("used"), made.volume("spare")
    holder = made.container("holder", volumes={used: {"bind": "/data", "mode": "rw"}})
    network = made.network("net")
    with console_errors(page) as errors:
        open_node(page, portal)
        tab(page, "Volumes").click()
        expect(row(page, used)).to_contain_text(holder.name)
        expect(row(page, spare)).to_contain_text("unused")
        snap_fitting(page, "host-volumes")

        row(page, used).get_by_role("button", name=f"remove volume {used}").click()
        expect(page.locator(".flash.error")).to_contain_text(f"is in use by {holder.name}")
        assert dialogs[-1].startswith(f"Remove the volume {used} ")
        row(page, spare).get_by_role("button", name=f"remove volume {spare}").click()
        expect(page.locator(".flash").first).to_have_text(f"Volume {spare} removed.")
        expect(row(page, spare)).to_have_count(0)
        assert spare not in [v.name for v in made.client.volumes.list()]
        assert used in [v.name for v in made.client.volumes.list()]

        tab(page, "Images").click()
        expect(page.locator("#images")).to_contain_text(holder.name)  # the base image's user
        snap_fitting(page, "host-images")
        tab(page, "Networks").click()
        expect(row(page, network)).to_contain_text("unused")
        expect(row(page, "bridge")).to_contain_text("built in")
        expect(row(page, "bridge").get_by_role("button")).to_have_count(0)
        snap_fitting(page, "host-networks")
        tab(page, "Overview").click()
        expect(page.locator("h1")).to_contain_text("spectr-node")
        snap_fitting(page, "host-overview")
    assert errors == []
