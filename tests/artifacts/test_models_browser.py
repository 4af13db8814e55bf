"""Model files in a real browser against a real `spectr run`: upload a GGUF from the catalog
page (the browser sends the raw file to the API and shows its progress), read the facts and
files on the model's page, put it on the Spectr node, see it on the host page.

Spectr's registry is a real docker-registry process whose certificate comes from the portal's
own CA, recorded in the portal's database as a registry deploy would.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agent.tests.registry_process import RegistryProcess, start_registry
from tests.browser.conftest import (  # noqa: F401 - the browser harness's fixtures
    ARTIFACTS,
    Portal,
    browser_context,
    chromium_path,
    page,
    playwright_driver,
    portal,
)
from tests.support.tiny_gguf import write_tiny_llama_gguf

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def recorded_registry(portal: Portal, tmp_path: Path) -> Iterator[RegistryProcess]:  # noqa: F811
    """A registry recorded as Spectr's own in the running portal's database."""
    from portal.app import create_app
    from portal.core.pki import ca_certificate_pem, issue_server_certificate
    from portal.extensions import db
    from portal.registry.models import SPECTR, Registry

    app = create_app({"SPECTR_INSTANCE_PATH": str(portal.instance)})
    with app.app_context():
        cert, key = issue_server_certificate("Spectr registry", ["127.0.0.1"])
        registry = start_registry(tmp_path / "registry", cert, key, ca_certificate_pem(),
                                  "spectr", "browser-registry-password")  # fmt: skip
        db.session.query(Registry).filter_by(kind=SPECTR).delete()
        db.session.add(Registry(name="spectr", kind=SPECTR, url=registry.url, username="spectr",
                                password="browser-registry-password", ca_pem=registry.ca_pem))  # fmt: skip
        db.session.commit()
        db.engine.dispose()
    yield registry
    registry.stop()
    shutil.rmtree(portal.instance / "node-models", ignore_errors=True)


def _log_in(page: Page, portal: Portal) -> None:  # noqa: F811
    page.goto(f"{portal.url}/login")
    page.fill("input[name=username]", portal.username)
    page.fill("input[name=password]", portal.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def _operation_succeeds(page: Page) -> None:  # noqa: F811
    page.wait_for_url(re.compile(r"/operations/[0-9a-f-]+$"))
    expect(page.locator("#op-state")).to_contain_text("succeeded", timeout=60_000)


def _screenshots(page: Page, name: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})


def test_upload_a_gguf_see_its_files_and_put_it_on_the_node(
    page: Page,  # noqa: F811
    portal: Portal,  # noqa: F811
    recorded_registry: RegistryProcess,
    tmp_path: Path,
) -> None:
    gguf = write_tiny_llama_gguf(tmp_path / "tiny.gguf", seed=7)
    _log_in(page, portal)
    page.goto(f"{portal.url}/catalog")
    page.locator("#import-model summary").click()
    form = page.locator("#import-model form")
    form.locator("input[name=name]").fill("browser-tiny")
    form.locator("input[type=file]").set_input_files(str(gguf))
    form.get_by_role("button", name="Upload and import").click()
    _operation_succeeds(page)
    expect(page.locator("#op-log")).to_contain_text("Facts read from the files: format gguf")

    page.goto(f"{portal.url}/catalog")
    page.get_by_role("link", name="browser-tiny").first.click()
    expect(page.locator("h1")).to_contain_text("browser-tiny")
    expect(page.locator("#model-files")).to_contain_text("tiny.gguf")
    expect(page.locator("main, body").first).to_contain_text("256")  # context from the file
    expect(page.locator("#model-hosts")).to_contain_text("No host holds these files yet")

    page.locator("#distribute-model").get_by_label(re.compile("spectr-node")).check()
    page.get_by_role("button", name="Put on hosts").click()
    _operation_succeeds(page)
    expect(page.locator("#op-log")).to_contain_text("tiny.gguf fetched")

    page.go_back()
    page.reload()
    expect(page.locator("#model-hosts")).to_contain_text("spectr-node")
    expect(page.locator("#model-hosts")).to_contain_text("present")
    _screenshots(page, "model-page")

    page.locator("#model-hosts").get_by_role("link", name="spectr-node").click()
    expect(page.locator("#cached-models")).to_contain_text("browser-tiny")
    expect(page.locator("#cached-models")).to_contain_text("r1")
    _screenshots(page, "host-page-models")


def test_an_admin_adds_a_hub_mirror_and_imports_from_it(
    page: Page,  # noqa: F811
    portal: Portal,  # noqa: F811
    recorded_registry: RegistryProcess,
    tmp_path: Path,
) -> None:
    from tests.artifacts.hub_mirror import HubMirror

    folder = tmp_path / "hub"
    folder.mkdir()
    write_tiny_llama_gguf(folder / "tiny.gguf", seed=8)
    mirror = HubMirror("team/tiny", folder, token="hf_browser_test_token")
    try:
        _log_in(page, portal)
        page.goto(f"{portal.url}/catalog")
        page.locator("#add-model-source summary").click()
        form = page.locator("#add-model-source form")
        form.locator("input[name=name]").fill("hub-mirror")
        form.locator("input[name=url]").fill(mirror.url)
        form.locator("input[name=token]").fill(mirror.token)
        form.get_by_role("button", name="Add source").click()
        expect(page.locator("#model-sources-table")).to_contain_text("stored, encrypted")
        expect(page.locator("body")).not_to_contain_text(mirror.token)

        page.locator("#import-remote summary").click()
        remote = page.locator("#import-remote form")
        remote.locator("input[name=name]").fill("hub-tiny")
        remote.locator("select[name=from]").select_option(label="hub-mirror (huggingface)")
        remote.locator("input[name=location]").fill("team/tiny")
        remote.get_by_role("button", name="Import").click()
        _operation_succeeds(page)
        expect(page.locator("#op-log")).to_contain_text("1 file(s)")
        _screenshots(page, "model-import-from-mirror")
        page.goto(f"{portal.url}/catalog#model-sources")
        _screenshots(page, "catalog-model-sources")
    finally:
        mirror.stop()
