"""The deploy-model flow in a real browser against a real `spectr run` (embedded worker):
seed the catalog, point the custom runtime at the stand-in model server image, add a model,
deploy it onto the Spectr node from the model page, watch its live log, run a command.

The model server is the stand-in image (tests/images/build-model-server.sh): a real LLM needs
a GPU and weights this machine does not have.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.apps.helpers import get_json
from tests.browser.conftest import (  # noqa: F401 - the browser harness's fixtures
    Portal,
    browser_context,
    chromium_path,
    page,
    playwright_driver,
    portal,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.docker]


def _log_in(page: Page, portal: Portal) -> None:  # noqa: F811
    page.goto(f"{portal.url}/login")
    page.fill("input[name=username]", portal.username)
    page.fill("input[name=password]", portal.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def test_deploy_model_from_the_catalog_in_the_browser(
    page: Page,  # noqa: F811
    portal: Portal,  # noqa: F811
    standin_image: str,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    _log_in(page, portal)
    page.goto(f"{portal.url}/catalog")
    seed = page.get_by_role("button", name="Add the shipped runtimes and models")
    if seed.count():
        seed.click()
    runtime_row = page.locator("tr[id^=runtime-]", has_text="custom")
    runtime_id = runtime_row.get_attribute("id").removeprefix("runtime-")
    editor = page.locator(f"form[action$='/runtimes/{runtime_id}/edit']")
    editor.locator("xpath=ancestor::details").locator("summary").click()
    editor.locator("input[name=image]").fill(standin_image)
    editor.locator("textarea[name=command_template]").fill(
        "python3\n/srv/server.py\n--port\n{port}\n--model\n{model_name}"
    )
    editor.get_by_role("button", name="Save runtime").click()
    expect(page.locator(".flash")).to_have_text("Runtime saved.")

    model_name = unique_name("model").removeprefix("spectr-test-")
    page.locator("#add-model summary").click()
    form = page.locator("#add-model form")
    for field, value in {
        "name": model_name, "family": "standin", "parameters_billions": "0.01",
        "source": standin_image, "context_length": "2048", "license": "mit",
    }.items():  # fmt: skip
        form.locator(f"[name={field}]").fill(value)
    form.locator("select[name=source_kind]").select_option("image")
    form.locator("select[name=format]").select_option("other")
    form.get_by_role("button", name="Add model").click()
    expect(page.locator("h1")).to_contain_text(model_name)
    expect(page.locator("#estimate")).to_contain_text("Needs about")

    app_name, port = unique_name("browser"), free_port()
    cleanup_containers.append(app_name)
    deploy = page.locator("#deploy-model")
    deploy.locator("[name=name]").fill(app_name)
    deploy.locator("select[name=runtime_id]").select_option(label="custom")
    node = deploy.locator("select[name=host_id] option", has_text="spectr-node").get_attribute(
        "value"
    )
    deploy.locator("select[name=host_id]").select_option(node)
    deploy.locator("[name=host_port]").fill(str(port))
    deploy.get_by_role("button", name="Deploy model").click()
    expect(page.locator("h1")).to_contain_text(app_name)

    # The embedded worker deploys it; the server then answers with the model's name.
    assert (
        get_json(f"http://127.0.0.1:{port}/v1/models", attempts=240)["data"][0]["id"] == model_name
    )
    # The deploy ends after the server answers; the page then reloads itself, once.
    expect(page.locator("#op-state")).to_have_text("succeeded", timeout=120_000)
    page.reload()
    expect(page.locator("#app-log")).to_contain_text("stand-in model server", timeout=20_000)
    page.locator("#command-box input[name=command]").fill("python3 -c 'print(6 * 7)'")
    page.locator("#command-box").get_by_role("button", name="Run").click()
    expect(page.locator("#command-output")).to_contain_text("42")
    expect(page.locator("#command-output")).to_contain_text("exit code 0")

    page.locator("#app-actions").get_by_role("button", name="Remove").click()
    expect(page.locator("#op-state")).to_have_text("succeeded", timeout=120_000)
