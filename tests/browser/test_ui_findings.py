"""Issue 13's findings, each checked in a real browser against a real `spectr run`.

Each test makes the state it needs through the API or the pages (the portal is shared by the
session), then looks at the page as a person would: colours, titles, messages, dialogs.
Screenshots of the pages go to tests/.artifacts/screens/ at 1440 x 900 and 390 x 844.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import Portal
from tests.browser.pages import Api, console_errors, cut_chips, script_held, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]
APP_URL = re.compile(r"/apps/(?P<id>\d+)$")
OPERATION_URL = re.compile(r"/operations/(?P<id>[0-9a-f-]{36})$")
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n"
# The contrast of text against what is behind it, as WCAG computes it (1 = invisible, 21 = max).
CONTRAST = """(element) => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  let behind = element;
  while (behind && rgb(getComputedStyle(behind).backgroundColor)[3] === 0) behind = behind.parentElement;
  const fg = luminance(rgb(getComputedStyle(element).color));
  const bg = luminance(rgb(behind ? getComputedStyle(behind).backgroundColor : "rgb(255,255,255)"));
  return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
}"""


def unique(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:6]}"


def database(portal: Portal) -> sqlite3.Connection:
    """The portal's own SQLite file, for facts only a real host could report (GPUs, keys)."""
    assert portal.instance is not None
    return sqlite3.connect(portal.instance / "spectr.db", timeout=10)


def add_host(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    return api.post("/hosts", {"name": name, "address": "10.99.0.1", "ssh_private_key": KEY,
                               **fields})  # fmt: skip


def local_node(api: Api) -> dict[str, Any]:
    """The Spectr node's host (the Applications page records it on a fresh install)."""
    api.page.goto(f"{api.portal.url}/apps")
    return next(h for h in api.get("/hosts") if h["is_local"])


def add_app(api: Api, name: str, **container: Any) -> dict[str, Any]:
    """An application that is recorded but not deployed (no operation runs)."""
    node = local_node(api)
    return api.post("/apps", {"name": name, "host_id": node["id"], "kind": "container",
                              "container": {"image": "busybox:1", **container},
                              "deploy": False})  # fmt: skip


def add_model(api: Api, name: str) -> dict[str, Any]:
    return api.post("/models", {
        "name": name, "family": "test", "parameters_billions": 0.5, "quantization": "fp16",
        "format": "safetensors", "source_kind": "huggingface", "source": "test/model",
        "context_length": 2048, "license": "mit",
    })  # fmt: skip


# 1 ------------------------------------------------------------------------------------------
def test_link_buttons_are_readable_on_their_background(
    page: Page, portal: Portal, api: Api
) -> None:
    image = f"registry.local:5000/team/{unique('contrast')}:1"
    api.post("/catalog/images", {"reference": image})
    app = add_app(api, unique("contrast"))
    api.post(f"/apps/{app['id']}/revisions", {"container": {"image": "busybox:2"}, "deploy": False})
    host = add_host(api, unique("contrast"))
    with database(portal) as db:
        db.execute("UPDATE hosts SET host_key = 'k', host_key_fingerprint = 'SHA256:k' WHERE id = ?",
                   (host["id"],))  # fmt: skip

    page.goto(f"{portal.url}/catalog")
    remove = page.locator("tr", has_text=image).get_by_role("button", name="remove")
    page.goto(f"{portal.url}/catalog#images")
    assert remove.evaluate(CONTRAST) >= 4.5
    page.goto(f"{portal.url}/apps/{app['id']}")
    roll_back = page.get_by_role("button", name="roll back to this")
    assert roll_back.evaluate(CONTRAST) >= 4.5
    page.goto(f"{portal.url}/hosts/{host['id']}")
    forget = page.get_by_role("button", name="Forget host key")
    assert forget.evaluate(CONTRAST) >= 4.5
    snap(page, "host-detail")


# 2 ------------------------------------------------------------------------------------------
def test_the_registry_page_title_is_its_name(page: Page, portal: Portal, api: Api) -> None:
    page.goto(f"{portal.url}/registry")

    expect(page).to_have_title("Registry · Spectr")
    assert page.locator("#register-form").count() == 1  # the form is in the page, once
    snap(page, "registry")


# 3 and 5 ------------------------------------------------------------------------------------
def test_command_splits_like_a_shell_and_a_failed_deploy_shows_on_the_app_page(
    page: Page, portal: Portal, api: Api
) -> None:
    page.goto(f"{portal.url}/apps")
    page.locator("#new-app summary").click()
    form = page.locator("#new-app form")
    command = form.locator("input[name=command]")
    command.fill('echo "unterminated')
    expect(form.locator("#command-argv")).to_contain_text("No closing quotation")
    command.fill('sh -c "while true; do echo hi; sleep 2; done"')
    words = form.locator("#argv-list li")
    expect(words).to_have_text(["sh", "-c", "while true; do echo hi; sleep 2; done"])
    snap(page, "apps-new-application")

    name = unique("argv")
    form.locator("input[name=name]").fill(name)
    # Nothing answers on port 9 of this machine: the deploy fails when it pulls the image.
    form.locator("input[name=image]").fill("127.0.0.1:9/spectr-test/absent:1")
    form.get_by_role("button", name="Create and deploy").click()
    page.wait_for_url(APP_URL)
    app_id = APP_URL.search(page.url)["id"]  # type: ignore[index]
    (revision,) = api.get(f"/apps/{app_id}/revisions")
    assert revision["spec"]["command"] == ["sh", "-c", "while true; do echo hi; sleep 2; done"]

    # The page follows the deploy live, then shows why it failed, with the operation's log.
    expect(page.locator("#app-status .badge")).to_have_text("failed", timeout=240_000)
    expect(page.locator("#app-status")).to_contain_text("app.deploy failed:")
    expect(page.locator("#op-state")).to_have_text("failed")
    expect(page.locator("#op-error")).not_to_be_empty()
    assert page.locator("#op-log span").count() > 0
    expect(page.locator("#app-log")).to_contain_text("No container yet; waiting")
    page.goto(f"{portal.url}/apps")
    expect(page.locator("tr", has_text=name).locator(".badge")).to_have_text("failed")
    page.goto(f"{portal.url}/apps/{app_id}")
    snap(page, "app-failed-deploy")


# 7 ------------------------------------------------------------------------------------------
def test_a_runtime_can_be_added_from_the_catalog_page_after_a_model_was(
    page: Page, portal: Portal, api: Api
) -> None:
    for runtime in api.get("/runtimes"):
        page.request.delete(f"{portal.url}/api/v1/runtimes/{runtime['id']}",
                            headers=api._headers())  # fmt: skip
    model = add_model(api, unique("by-hand"))

    page.goto(f"{portal.url}/catalog/models/{model['id']}")
    expect(page.locator("#no-runtime")).to_contain_text("No serving runtime")
    expect(
        page.locator("#deploy-model").get_by_role("button", name="Deploy model")
    ).to_be_disabled()
    page.goto(f"{portal.url}/catalog")
    expect(page.locator("#seed-catalog")).to_contain_text("No serving runtime yet")
    expect(page.locator("#seed-catalog")).not_to_contain_text("The catalog is empty")
    expect(page.get_by_role("button", name="Add the shipped runtimes and models")).to_be_visible()

    page.locator("#add-runtime summary").click()
    form = page.locator("#add-runtime form")
    name = unique("own-runtime")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=image]").fill("registry.local:5000/team/server:1")
    form.locator("textarea[name=command_template]").fill("--model\n{model_source}\n--port\n{port}")
    form.get_by_role("button", name="Add runtime").click()
    expect(page.locator(".flash")).to_contain_text(f"Runtime {name} added")
    expect(page.locator("tr[id^=runtime-]", has_text=name)).to_contain_text(
        "--model {model_source}"
    )
    snap(page, "catalog")

    page.goto(f"{portal.url}/catalog/models/{model['id']}")
    runtime_choice = page.locator("#deploy-model select[name=runtime_id] option")
    expect(runtime_choice).to_have_text([name])


# 8 ------------------------------------------------------------------------------------------
def test_the_deploy_form_offers_the_chosen_hosts_real_gpus(
    page: Page, portal: Portal, api: Api
) -> None:
    model = add_model(api, unique("gpus"))
    gpu_host = add_host(api, unique("two-gpus"))
    with database(portal) as db:
        db.executemany(
            'INSERT INTO host_gpus (host_id, "index", model, memory_total_mib, memory_used_mib)'
            " VALUES (?, ?, 'NVIDIA A10', 23028, 0)",
            [(gpu_host["id"], 0), (gpu_host["id"], 1)],
        )
    node = local_node(api)

    page.goto(f"{portal.url}/catalog/models/{model['id']}")
    form = page.locator("#deploy-model")
    form.locator("select[name=host_id]").select_option(str(node["id"]))
    expect(form.locator("input[name=gpus]:visible")).to_have_count(0)
    expect(form.locator(f"[data-gpus-of='{node['id']}']")).to_contain_text("reports no GPU")
    form.locator("select[name=host_id]").select_option(str(gpu_host["id"]))
    boxes = form.locator("input[name=gpus]:visible")
    expect(boxes).to_have_count(2)
    assert [boxes.nth(i).get_attribute("value") for i in range(2)] == ["0", "1"]
    snap(page, "catalog-model")


# 9 ------------------------------------------------------------------------------------------
def test_name_patterns_compile_and_pages_log_no_errors(
    page: Page, portal: Portal, api: Api
) -> None:
    model = add_model(api, unique("pattern"))
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/apps")
        page.locator("#new-app summary").click()
        name = page.locator("#new-app input[name=name]")
        name.fill("Bad Name")
        assert name.evaluate("(e) => e.validity.patternMismatch") is True
        name.fill("good-name_2")
        assert name.evaluate("(e) => e.validity.valid") is True
        page.goto(f"{portal.url}/catalog/models/{model['id']}")
        deploy_name = page.locator("#deploy-model input[name=name]")
        deploy_name.fill("-starts-with-dash")
        assert deploy_name.evaluate("(e) => e.validity.patternMismatch") is True
        for path in PAGES:
            page.goto(portal.url + path)
    assert errors == []


PAGES = ["/", "/hosts", "/hosts/new", "/catalog", "/apps", "/registry", "/gateway",
         "/monitoring", "/operations", "/admin/users", "/admin/audit", "/admin/tokens",
         "/admin/sign-in",
         "/settings"]  # fmt: skip


# 10 -----------------------------------------------------------------------------------------
def test_refused_forms_say_each_field_once_readably_and_keep_what_was_typed(
    page: Page, portal: Portal, api: Api
) -> None:
    page.goto(f"{portal.url}/gateway")
    route = page.locator("form[action$='/gateway/routes']")
    route.locator("input[name=name]").fill(unique("route"))
    route.locator("input[name=upstreams]").fill("not a url")
    route.get_by_role("button", name="Create route").click()
    flash = page.locator(".flash.error")
    expect(flash).to_contain_text(re.compile(r"^upstreams\[0\]: .+", re.MULTILINE))
    assert "{" not in flash.inner_text()

    page.goto(f"{portal.url}/catalog")
    page.locator("#add-image input[name=reference]").fill("team/App")
    page.locator("#add-image input[name=description]").fill("typed by hand")
    page.locator("#add-image").get_by_role("button", name="Add image").click()
    flash = page.locator(".flash.error")
    expect(flash).to_contain_text("repository component 'App' must be lowercase")
    assert flash.inner_text().count("must be lowercase") == 1
    expect(page.locator("#add-image input[name=reference]")).to_have_value("team/App")
    expect(page.locator("#add-image input[name=description]")).to_have_value("typed by hand")

    page.goto(f"{portal.url}/settings")
    page.locator("input[name=ssh_default_user]").fill("deployer")
    page.locator("input[name=ssh_default_port]").fill("99999")
    page.get_by_role("button", name="Save settings").click()
    flash = page.locator(".flash.error")
    expect(flash).to_contain_text("ssh_default_port: ")
    assert flash.inner_text().count("ssh_default_port") == 1
    expect(page.locator("input[name=ssh_default_user]")).to_have_value("deployer")
    expect(page.locator("input[name=ssh_default_port]")).to_have_value("99999")
    snap(page, "settings-refused")


# 11 -----------------------------------------------------------------------------------------
def test_the_operation_page_follows_attempts_and_cancel_after_the_end_is_a_message(
    page: Page, portal: Portal, api: Api
) -> None:
    page.goto(f"{portal.url}/operations")
    page.fill("#start-sleep input[name=seconds]", "2")
    page.get_by_role("button", name="Start sleep operation").click()
    page.wait_for_url(OPERATION_URL)
    expect(page.locator("#op-cancel")).to_be_visible()

    expect(page.locator("#op-state")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#op-attempts")).to_have_text(re.compile(r"^1 of \d+$"))
    expect(page.locator("#op-cancel")).to_have_count(0)
    snap(page, "operation-detail")

    # A page opened before the end still has the button: pressing it says what happened.
    page.evaluate("""() => {
      const form = document.createElement("form");
      form.method = "post"; form.action = location.pathname + "/cancel";
      const csrf = document.createElement("input");
      csrf.type = "hidden"; csrf.name = "csrf_token";
      csrf.value = document.querySelector('meta[name="csrf-token"]').content;
      form.appendChild(csrf); document.body.appendChild(form); form.submit();
    }""")
    expect(page.locator(".flash.error")).to_have_text(
        "Nothing to cancel: the operation already ended (succeeded)."
    )
    # Still the operation page, not an error page (its id may well contain "409").
    expect(page.locator("h1")).to_have_text(re.compile(r"^sleep [0-9a-f-]{36}$"))


# 12 -----------------------------------------------------------------------------------------
def test_reloading_after_creating_a_token_or_a_key_creates_no_second_one(
    page: Page, portal: Portal, api: Api
) -> None:
    name = unique("token")
    page.goto(f"{portal.url}/admin/tokens")
    page.fill("form[action$='/admin/tokens'] input[name=name]", name)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#new-token")).to_have_text(re.compile(r"\S{20,}"))
    expect(page).to_have_url(f"{portal.url}/admin/tokens")
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("tr", has_text=name)).to_have_count(1)

    key = unique("key")
    page.goto(f"{portal.url}/gateway")
    page.fill("form[action$='/gateway/keys'] input[name=name]", key)
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_have_text(re.compile(r"\S{20,}"))
    snap(page, "gateway-key-created")
    page.reload()
    expect(page).to_have_url(f"{portal.url}/gateway")
    expect(page.locator(".flash")).to_contain_text("shown once")
    expect(page.locator("tr", has_text=key)).to_have_count(1)


# 13 -----------------------------------------------------------------------------------------
def _answer_next_dialog(page: Page, accept: bool) -> list[str]:
    said: list[str] = []

    def answer(dialog: Dialog) -> None:
        said.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    return said


def test_destructive_buttons_ask_first(page: Page, portal: Portal, api: Api) -> None:
    name = unique("revoke-me")
    page.goto(f"{portal.url}/admin/tokens")
    page.fill("form[action$='/admin/tokens'] input[name=name]", name)
    # exact: with two tokens or more the table's "Created" column header is a sort button too
    page.get_by_role("button", name="Create", exact=True).click()
    row = page.locator("tr", has_text=name)
    said = _answer_next_dialog(page, accept=False)
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("active")
    assert said and name in said[0]
    _answer_next_dialog(page, accept=True)
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash")).to_contain_text(f"Token {name} revoked")
    expect(row).to_contain_text("revoked")

    host = add_host(api, unique("delete-me"))
    with database(portal) as db:
        db.execute("UPDATE hosts SET host_key = 'k', host_key_fingerprint = 'SHA256:k' WHERE id = ?",
                   (host["id"],))  # fmt: skip
    page.goto(f"{portal.url}/hosts/{host['id']}")
    _answer_next_dialog(page, accept=True)
    page.get_by_role("button", name="Forget host key").click()
    expect(page.locator("#host-key")).to_contain_text("not recorded yet")
    said = _answer_next_dialog(page, accept=False)
    page.locator("#host-actions").get_by_role("button", name="Delete").click()
    assert said and host["name"] in said[0]
    expect(page).to_have_url(f"{portal.url}/hosts/{host['id']}")
    _answer_next_dialog(page, accept=True)
    page.locator("#host-actions").get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_have_text(f"Host {host['name']} deleted.")

    app = add_app(api, unique("forget-me"))
    page.goto(f"{portal.url}/apps/{app['id']}")
    said = _answer_next_dialog(page, accept=False)
    page.locator("#app-actions").get_by_role("button", name="Forget").click()
    assert said and app["name"] in said[0]
    expect(page.locator("h1")).to_contain_text(app["name"])
    _answer_next_dialog(page, accept=True)
    page.locator("#app-actions").get_by_role("button", name="Forget").click()
    expect(page.locator(".flash")).to_have_text("Application forgotten.")
    for confirmed in ["form[action$='/action/remove']", "form[action$='/delete']"]:
        assert page.locator(confirmed).count() == 0  # nothing left to press on the list page


def test_a_destructive_button_pressed_before_the_deferred_scripts_ran_still_asks(
    page: Page, portal: Portal, api: Api
) -> None:
    """Buttons are drawn before the page's deferred scripts run; on a slow page (CI's busy
    machine, a portal far away) a press can come first and must ask all the same. The slow page
    is made here by holding spectr.js, where the question used to be asked, until after the
    press."""
    name = unique("pressed-early")
    page.goto(f"{portal.url}/admin/tokens")
    page.fill("form[action$='/admin/tokens'] input[name=name]", name)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#new-token")).to_be_visible()
    with script_held(page, "**/static/js/spectr.js") as held:
        page.goto(f"{portal.url}/admin/tokens", wait_until="commit")
        row = page.locator("tr", has_text=name)
        said = _answer_next_dialog(page, accept=False)
        row.get_by_role("button", name="Revoke").click()
        assert len(held) == 1  # spectr.js had not arrived when the button was pressed
        assert said and name in said[0]
    page.reload()
    expect(page.locator("tr", has_text=name)).to_contain_text("active")


# 15 -----------------------------------------------------------------------------------------
def test_an_impossible_ipv4_address_is_refused_and_names_still_pass(
    page: Page, portal: Portal, api: Api
) -> None:
    refused = api.post("/hosts", {"name": unique("bad-ip"), "address": "256.300.1.1",
                                  "ssh_private_key": KEY}, status=422)  # fmt: skip
    assert refused["details"]["address"] == [
        "256.300.1.1 is not an IPv4 address: four numbers from 0 to 255, like 10.0.0.12."
    ]
    add_host(api, unique("named"), address="gpu-01.lab.internal")

    page.goto(f"{portal.url}/hosts/new")
    name = unique("bad-ip")
    page.fill("#host-form input[name=name]", name)
    page.fill("#host-form input[name=address]", "256.300.1.1")
    page.get_by_role("button", name="Add host").click()
    expect(page.locator(".flash.error")).to_contain_text(
        "address: 256.300.1.1 is not an IPv4 address"
    )
    expect(page.locator("#host-form input[name=name]")).to_have_value(name)
    snap(page, "host-form-refused")


# 16 -----------------------------------------------------------------------------------------
def test_deploying_the_registry_preselects_only_a_ready_host(
    page: Page, portal: Portal, api: Api
) -> None:
    fresh = add_host(api, unique("never-bootstrapped"))

    page.goto(f"{portal.url}/registry")
    choice = page.locator("#deploy-form select[name=host_id]")
    chosen = choice.locator("option:checked")
    expect(chosen).to_contain_text("ready")
    assert chosen.get_attribute("data-status") == "ready"
    expect(choice.locator(f"option[value='{fresh['id']}']")).to_contain_text("not bootstrapped yet")


# 22 (in part) -------------------------------------------------------------------------------
def test_times_to_the_second_chips_whole_a_favicon_and_only_applicable_actions(
    page: Page, portal: Portal, api: Api
) -> None:
    page.goto(f"{portal.url}/operations")
    page.fill("#start-sleep input[name=seconds]", "0")
    page.get_by_role("button", name="Start sleep operation").click()
    page.wait_for_url(OPERATION_URL)
    created = page.locator("dt:text('Created') + dd time")
    expect(created).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? UTC",
                        created.get_attribute("title") or "")  # fmt: skip

    add_host(api, unique("chip"))  # a second status beside the Spectr node's "ready"
    for path in ["/hosts", "/"]:
        page.goto(portal.url + path)
        for width, height in [(1440, 900), (390, 844)]:
            page.set_viewport_size({"width": width, "height": height})
            assert not cut_chips(page, ".badge, .seg"), path
    page.set_viewport_size({"width": 1440, "height": 900})
    icon = page.locator("link[rel=icon]").get_attribute("href")
    answer = page.request.get(portal.url + (icon or "/missing"))
    assert answer.ok and answer.headers["content-type"].startswith("image/svg+xml")
    assert page.request.get(f"{portal.url}/favicon.ico").ok

    app = add_app(api, unique("never-started"))
    page.goto(f"{portal.url}/apps/{app['id']}")
    buttons = page.locator("#app-actions button").all_inner_texts()
    assert "Start" not in buttons and "Stop" not in buttons and "Restart" not in buttons
    assert "Deploy latest" in buttons


def test_every_page_at_desktop_and_phone_size(page: Page, portal: Portal, api: Api) -> None:
    """Screenshots for a person to look at; on a phone no page is wider than the phone."""
    app = add_app(api, unique("tour"), command=["sh", "-c", "echo hi"])
    model = add_model(api, unique("tour"))
    node = local_node(api)
    operation = api.post("/operations", {"kind": "sleep", "params": {"seconds": 0}})
    details = {
        "app": f"/apps/{app['id']}",
        "model": f"/catalog/models/{model['id']}",
        "host": f"/hosts/{node['id']}",
        "operation": f"/operations/{operation['id']}",
    }
    pages = {path.strip("/").replace("/", "-") or "overview": path for path in PAGES}
    wide = {}
    for name, path in {**pages, **details}.items():
        page.goto(portal.url + path)
        snap(page, f"page-{name}")
        page.set_viewport_size({"width": 390, "height": 844})
        wide[path] = page.evaluate("() => document.documentElement.scrollWidth")
        page.set_viewport_size({"width": 1440, "height": 900})
    assert {path: width for path, width in wide.items() if width > 390} == {}
