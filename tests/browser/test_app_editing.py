"""Issue 13 "Beyond", in Chromium against a `spectr run` of their own and this machine's real
Docker engine: edit an application from its prefilled form and deploy the new revision (the
container on the engine changes), duplicate it, edit a compose file with the server's check
pointing at lines, the applications list, hosts list and dashboard following status without
reload, and each GPU's charts on the host page.

There is no GPU on this machine: a stand-in `nvidia-smi` first on the portal's PATH prints
what the real one prints for two H200s, with readings that change at every call. The portal's
own health sweep (every 5 s) reads it through the real code path.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Portal, running_portal
from tests.browser.pages import Api, console_errors, log_in, script_held, snap
from tests.browser.test_live_status_and_logs import mark_page, still_marked, wait_for
from tests.support.fake_nvidia_smi import install_fake_nvidia_smi

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]
BUILD_BASE = Path(__file__).resolve().parents[1] / "images" / "build-base.sh"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """This module's portal: 1 s heartbeats, and the stand-in nvidia-smi on its PATH."""
    folder = install_fake_nvidia_smi(tmp_path_factory.mktemp("fake-gpu-bin"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        instance = tmp_path_factory.mktemp("editing-instance")
        with running_portal(instance, SSE_HEARTBEAT_SECONDS="1") as started:
            yield started


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run([str(BUILD_BASE)], capture_output=True, text=True, check=True)
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    """This machine's engine; the containers Spectr deployed for the test go afterwards."""
    client = docker.from_env()
    yield client
    for container in client.containers.list(all=True, filters={"name": "spectr-test-edit"}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    client.close()


@pytest.fixture
def api(page: Page, portal: Portal) -> Api:
    log_in(page, portal)
    api = Api(page, portal)
    api.patch("/settings", {"health_check_interval_seconds": 5})
    return api


def node_id(api: Api) -> int:
    api.page.goto(f"{api.portal.url}/apps")
    return next(host["id"] for host in api.get("/hosts") if host["is_local"])


def finished(api: Api, operation_id: str) -> str:
    wait_for(lambda: api.get(f"/operations/{operation_id}")["state"] in ("succeeded", "failed"),
             300, "the end of the deploy")  # fmt: skip
    return api.get(f"/operations/{operation_id}")["state"]


def test_edit_a_deployed_app_deploy_the_new_revision_and_duplicate_it(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name = f"spectr-test-edit-{uuid.uuid4().hex[:6]}"
    created = api.post("/apps", {
        "name": name, "host_id": node_id(api), "kind": "container",
        "container": {"image": image, "command": ["sh", "-c", "echo v1; sleep 3600"],
                      "env": {"MODE": "one"}, "labels": {"team": "ml"}, "pull": "never"},
        "secret_env": {"API_KEY": "first-secret"},
    })  # fmt: skip
    assert finished(api, created["last_operation_id"]) == "succeeded"

    with console_errors(page) as errors:
        page.goto(f"{portal.url}/apps/{created['id']}")
        page.click("#edit-app-link")
        expect(page.locator("input[name=image]")).to_have_value(image)
        expect(page.locator("input[name=command]")).to_have_value("sh -c 'echo v1; sleep 3600'")
        expect(page.locator("#argv-list li")).to_have_count(3)  # the argv shown before deploying
        expect(page.locator("textarea[name=env]")).to_have_value("MODE=one")
        secret = page.locator("input[name=secret__API_KEY]")
        expect(secret).to_have_value("")  # the value never comes back to the browser
        assert "first-secret" not in page.content()
        expect(page.locator("#edit-gpus")).to_contain_text("GPU 1 · NVIDIA H200")
        page.fill("input[name=command]", "sh -c 'echo \"v2 ready\"; sleep 3600'")
        page.fill("textarea[name=env]", "MODE=two\nEXTRA=yes")
        page.fill("input[name=note]", "second mode")
        expect(page.locator("input[name=deploy]")).to_be_checked()
        snap(page, "app-edit-form")
        page.click("button:text('Save revision 2')")

        expect(page.locator(".flash")).to_contain_text("Revision 2 saved; deploying it.")
        diff = page.locator("#revision-diff")
        expect(diff).to_contain_text("+  EXTRA: 'yes'")
        expect(diff.locator(".diff-removed", has_text="MODE: one")).to_have_count(1)
        expect(page.locator("#diff-caption")).to_contain_text("Revision 1 (deployed) → revision 2")
        shown = api.get(f"/apps/{created['id']}")
        assert finished(api, shown["last_operation_id"]) == "succeeded"
        container = engine.containers.get(name)
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env["MODE"] == "two" and env["EXTRA"] == "yes" and env["API_KEY"] == "first-secret"
        assert container.attrs["Config"]["Cmd"] == ["sh", "-c", 'echo "v2 ready"; sleep 3600']
        page.reload()
        expect(page.locator("#app-status .badge")).to_have_text("running", timeout=30_000)
        snap(page, "app-after-edit-diff")

        page.locator("#duplicate summary").click()
        page.fill("#duplicate input[name=name]", f"{name}-copy")
        page.click("#duplicate button[type=submit]")
        expect(page.locator(".flash")).to_contain_text(
            f"created from {name}. Deploy it when ready."
        )
        expect(page.locator("h1")).to_contain_text(f"{name}-copy")
        copy = api.get(f"/apps?host_id={shown['host_id']}")
        assert any(app["name"] == f"{name}-copy" and app["status"] == "pending" for app in copy)
        snap(page, "app-duplicated")
    assert errors == []


COMPOSE = """# web tier
services:
  web:
    image: {image}  # built here
    command: ["sleep", "3600"]
    ports:
      - "127.0.0.1:18091:80"
"""


def test_the_compose_editor_marks_problem_lines_and_saves_a_valid_file(
    page: Page, portal: Portal, api: Api, image: str
) -> None:
    created = api.post("/apps", {"name": f"spectr-test-edit-stack-{uuid.uuid4().hex[:4]}",
                                 "host_id": node_id(api), "kind": "compose",
                                 "compose": COMPOSE.format(image=image), "deploy": False})  # fmt: skip
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/apps/{created['id']}/edit")
        text = page.locator("#compose-text")
        expect(text).to_have_value(COMPOSE.format(image=image))  # comments as written
        expect(page.locator("#compose-check")).to_contain_text("Valid: 1 service")
        gutter = page.locator("[data-gutter]")
        expect(gutter).to_contain_text("7")

        broken = (
            COMPOSE.format(image=image).replace("    command:", "    comand:")
            + "  db:\n    ports: ['127.0.0.1:18091:5432']\n"
        )
        text.fill(broken)
        problems = page.locator(".compose-problems li")
        expect(problems).to_have_count(1)
        expect(problems.first).to_contain_text("line 5 services/web/comand: unknown key 'comand'")
        expect(gutter.locator(".bad-line")).to_have_text("5")
        page.click("button[data-goto-line='5']")
        selected = page.evaluate(
            "() => { const t = document.getElementById('compose-text');"
            " return t.value.slice(t.selectionStart, t.selectionEnd); }"
        )
        assert selected == '    comand: ["sleep", "3600"]'
        snap(page, "compose-editor-problem")

        text.fill(broken.replace("comand", "command"))
        expect(problems.first).to_contain_text("line 8 services/db: an image is needed")
        expect(problems.nth(1)).to_contain_text(
            "line 9 services/db/ports/0: host port 18091 is already published by service web"
        )
        expect(gutter.locator(".bad-line")).to_have_text(["8", "9"])
        page.click("button:text('Save revision 2')")
        expect(page.locator(".flash.error")).to_contain_text("an image is needed")  # 422, kept
        expect(page.locator("#compose-text")).to_have_value(broken.replace("comand", "command"))

        fixed = COMPOSE.format(image=image).replace("18091", "18092")
        page.locator("#compose-text").fill(fixed)
        expect(page.locator("#compose-check")).to_contain_text("Valid: 1 service")
        page.locator("input[name=deploy]").uncheck()
        page.click("button:text('Save revision 2')")
        expect(page.locator(".flash")).to_contain_text("Revision 2 saved. It is not deployed yet")
        expect(page.locator("#revision-diff")).to_contain_text("127.0.0.1:18092:80")
        expect(page.locator("#pending-revision")).to_have_count(0)  # never deployed: nothing runs
        snap(page, "compose-saved-diff")
    # the refused save is a 422 page, which Chromium logs as a failed load; nothing else
    assert [error for error in errors if "status of 422" not in error] == []


def test_the_compose_check_is_sent_again_when_the_network_drops_it(
    page: Page, portal: Portal, api: Api, image: str
) -> None:
    """A browser on the Docker host loses requests in flight whenever a container starts or
    stops (Chromium: ERR_NETWORK_CHANGED); the check must not keep the answer for the old text.
    The drop is made here by aborting the request, as Chromium does then."""
    created = api.post("/apps", {"name": f"spectr-test-drop-{uuid.uuid4().hex[:4]}",
                                 "host_id": node_id(api), "kind": "compose",
                                 "compose": COMPOSE.format(image=image), "deploy": False})  # fmt: skip
    sent: list[str] = []
    dropping = {"count": 2}

    def drop_some(route: Route) -> None:
        sent.append(route.request.post_data or "")
        if dropping["count"] > 0:
            dropping["count"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/apps/compose-check", drop_some)
    page.goto(f"{portal.url}/apps/{created['id']}/edit")
    text = page.locator("#compose-text")
    text.fill(COMPOSE.format(image=image) + "  db:\n    command: ['true']\n")
    expect(page.locator(".compose-problems li")).to_contain_text("services/db: an image is needed")
    assert len(sent) == 3 and all("db" in body for body in sent)  # two dropped, then answered

    dropping["count"] = 10  # every send dropped: it gives up after two repeats
    text.fill(COMPOSE.format(image=image))
    deadline = time.monotonic() + 60  # the first send and its two repeats, 0.5 s and 1 s apart
    while len(sent) < 6 and time.monotonic() < deadline:  # (a busy machine may take longer)
        page.wait_for_timeout(100)
    page.wait_for_timeout(2_500)  # longer than the last repeat's pause: no fourth send
    assert len(sent) == 6
    expect(page.locator(".compose-problems li")).to_contain_text("an image is needed")  # kept

    dropping["count"] = 1  # giving up on one text does not stop the next from being repeated
    text.fill(COMPOSE.format(image=image).replace("18091", "18093"))
    expect(page.locator("#compose-check")).to_contain_text("Valid: 1 service")
    assert len(sent) == 8 and "18093" in sent[-1]


def test_text_typed_before_the_pages_scripts_ran_is_checked(
    page: Page, portal: Portal, api: Api, image: str
) -> None:
    """The editor is there as soon as its HTML is; its scripts come after (they are deferred),
    and a slow page (a saved form's answer, on a busy portal) can be typed into before. What was
    typed then is checked once the scripts run. The slow script is made here by holding htmx's
    response until the text is in."""
    created = api.post("/apps", {"name": f"spectr-test-early-{uuid.uuid4().hex[:4]}",
                                 "host_id": node_id(api), "kind": "compose",
                                 "compose": COMPOSE.format(image=image), "deploy": False})  # fmt: skip
    with script_held(page, "**/vendor/htmx/htmx.min.js") as held:
        page.goto(f"{portal.url}/apps/{created['id']}/edit", wait_until="commit")
        text = page.locator("#compose-text")
        expect(page.locator("#compose-check")).to_contain_text("Valid: 1 service")  # the server's
        text.fill(COMPOSE.format(image=image) + "  db:\n    command: ['true']\n")
        assert len(held) == 1  # htmx had not arrived when the text changed
    expect(page.locator(".compose-problems li")).to_contain_text("services/db: an image is needed")
    expect(page.locator("[data-gutter] .bad-line")).to_have_text("8")


def test_lists_and_the_dashboard_follow_status_without_reload(
    page: Page, portal: Portal, api: Api, engine: docker.DockerClient, image: str
) -> None:
    name = f"spectr-test-edit-live-{uuid.uuid4().hex[:6]}"
    created = api.post("/apps", {
        "name": name, "host_id": node_id(api), "kind": "container",
        "container": {"image": image, "command": ["sleep", "3600"], "pull": "never",
                      "restart_policy": "no"},
    })  # fmt: skip
    assert finished(api, created["last_operation_id"]) == "succeeded"

    with console_errors(page) as errors:
        page.goto(f"{portal.url}/apps")
        cell = page.locator(f"#app-{created['id']}-status .badge")
        expect(cell).to_have_text("running", timeout=30_000)
        mark_page(page)
        engine.containers.get(name).stop(timeout=0)  # behind Spectr's back
        expect(cell).to_have_text(re.compile(r"^exited"), timeout=30_000)
        assert still_marked(page)
        snap(page, "apps-list-live")

        page.goto(f"{portal.url}/")
        tile = page.locator("#tile-apps")
        before = tile.inner_text()
        mark_page(page)
        engine.containers.get(name).start()
        expect(tile).not_to_have_text(before, timeout=30_000)
        assert still_marked(page)
        snap(page, "dashboard-live")

        node = node_id(api)
        page.goto(f"{portal.url}/hosts")
        seen = page.locator(f"#host-{node}-seen")
        first = seen.inner_text()
        mark_page(page)
        expect(seen).not_to_have_text(first, timeout=30_000)  # the next sweep, live
        expect(page.locator(f"#host-{node}-status .badge")).to_have_text("ready")
        assert still_marked(page)
        snap(page, "hosts-list-live")
    assert errors == []


def test_the_host_page_charts_each_gpu_and_follows_new_samples(
    page: Page, portal: Portal, api: Api
) -> None:
    node = node_id(api)
    wait_for(lambda: len(api.get(f"/hosts/{node}/gpu-samples")) == 2, 60, "readings of 2 GPUs")
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/hosts/{node}")
        charts = page.locator("#gpu-charts")
        expect(charts.locator(".gpu-card")).to_have_count(2)
        expect(charts.locator("#gpu-0-charts figcaption")).to_have_text(
            [
                re.compile(r"Utilisation\s+\d+ % now"),
                re.compile(r"Memory\s+\d+ of 143771 MiB now"),
                re.compile(r"Temperature\s+\d+ °C now"),
            ]
        )
        expect(charts.locator("#gpu-1-charts figure[data-metric=utilisation]")).to_contain_text(
            "no reading"
        )
        label = charts.locator("#gpu-0-charts svg").first
        count = int(re.search(r"(\d+) samples", label.get_attribute("aria-label") or "").group(1))
        mark_page(page)
        expect(label).to_have_attribute(
            "aria-label", re.compile(rf"\b{count + 2} samples"), timeout=30_000
        )  # two sweeps later, without reload
        assert still_marked(page)
        expect(charts.locator("#gpu-0-charts polyline")).to_have_count(3)
        snap(page, "host-gpu-charts")
    assert errors == []


def test_a_host_name_typed_before_the_pages_scripts_ran_gets_suggestions(
    page: Page, tmp_path: Path
) -> None:
    """The same early typing on the applications page of a fleet too large for a host select:
    the name typed before the scripts ran gets its suggestions once they run (htmx's script is
    held here until the name is in, as above)."""
    hosts = (f"node-{n:04d} ansible_host=10.99.1.{n % 250}" for n in range(205))
    fleet = "\n".join(["[gpu]", *hosts])
    (tmp_path / "large-fleet").mkdir()
    with running_portal(tmp_path / "large-fleet") as large:
        log_in(page, large)
        Api(page, large).post("/hosts/import", {"content": fleet, "format": "ini",
                                                "ssh_password": "not used"})  # fmt: skip
        with script_held(page, "**/vendor/htmx/htmx.min.js") as held:
            page.goto(f"{large.url}/apps", wait_until="commit")
            page.locator("#new-app summary").click()  # a <details>: opens without scripts
            page.locator("input[name=host_name]").fill("node-012")
            assert len(held) == 1  # htmx had not arrived when the name was typed
        options = page.locator("#host-suggestions option")
        expect(options).to_have_count(10)
        assert options.evaluate_all("(all) => all.map((o) => o.value)") == [
            f"node-012{n}" for n in range(10)
        ]
        snap(page, "apps-large-fleet-host-search")
