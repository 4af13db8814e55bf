"""Every page of the portal, walked in a real browser with seeded data, checked by axe-core
(vendored from npm in tests/browser/vendor/) in the light and the dark theme, and measured at
390 px for anything wider than the phone.

The walk starts from the top bar's links (a page added to the nav is walked without editing
this file) and adds each kind of detail page, with data made through the API.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import ARTIFACTS, Portal
from tests.browser.pages import Api, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n"
BLOCKING = ("serious", "critical")
# Only what axe can decide: "incomplete" results (contrast over an image, say) are not failures.
RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary),
  }));
}"""
NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
# The element that sticks out furthest to the right, when the page is wider than its window.
WIDEST = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return null;
  let worst = null, right = width;
  document.querySelectorAll("body *").forEach((el) => {
    const box = el.getBoundingClientRect();
    if (box.right > right + 1 && getComputedStyle(el).position !== "fixed") { right = box.right; worst = el; }
  });
  const name = worst ? worst.tagName.toLowerCase() + (worst.id ? "#" + worst.id : "")
    + (worst.className && typeof worst.className === "string" ? "." + worst.className.split(" ").join(".") : "") : "?";
  return { scrollWidth: document.documentElement.scrollWidth, widest: name, right: Math.round(right) };
}"""


def unique(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:6]}"


def seed(api: Api) -> dict[str, Any]:
    """One of each thing a detail page shows: a host, an application, a model, an operation,
    an image, a user, a token, a gateway key, a route, a flash message's worth of history."""
    api.page.goto(f"{api.portal.url}/hosts")  # records the Spectr node
    node = next(h for h in api.get("/hosts?status=ready") if h["is_local"])
    host = api.post(
        "/hosts", {"name": unique("walk"), "address": "10.99.0.3", "ssh_private_key": KEY}
    )
    app = api.post("/apps", {"name": unique("walk"), "host_id": node["id"], "kind": "container",
                             "container": {"image": "busybox:1"}, "deploy": False})  # fmt: skip
    model = api.post("/models", {
        "name": unique("walk"), "family": "test", "parameters_billions": 0.5,
        "quantization": "fp16", "format": "safetensors", "source_kind": "huggingface",
        "source": "test/model", "context_length": 2048, "license": "mit",
    })  # fmt: skip
    operation = api.post("/operations", {"kind": "sleep", "params": {"seconds": 0}})
    api.post("/catalog/images", {"reference": f"registry.local:5000/walk/{unique('img')}:1"})
    api.post("/users", {"username": unique("walker"), "password": "a long walking password",
                        "role": "viewer"})  # fmt: skip
    api.post("/proxy/routes", {"name": unique("walk"), "upstreams": ["http://127.0.0.1:9"]})
    api.post("/proxy/keys", {"name": unique("walk"), "models": ["*"]})
    return {"node": node, "host": host, "app": app, "model": model, "operation": operation}


def pages_to_walk(page: Page, portal: Portal, seeded: dict[str, Any]) -> list[str]:
    page.goto(f"{portal.url}/")
    nav = page.eval_on_selector_all("header nav a[href]", "links => links.map(a => a.href)")
    node, host = seeded["node"]["id"], seeded["host"]["id"]
    details = [
        "/hosts/new",
        f"/hosts/{host}",
        f"/hosts/{host}/edit",
        f"/hosts/{node}",
        f"/hosts/{node}/containers",
        f"/hosts/{node}/images",
        f"/hosts/{node}/volumes",
        f"/hosts/{node}/networks",
        f"/apps/{seeded['app']['id']}",
        f"/apps/adopt/{node}",
        f"/catalog/models/{seeded['model']['id']}",
        f"/operations/{seeded['operation']['id']}",
    ]
    walked = dict.fromkeys([*nav, *(portal.url + path for path in details)])
    return [url for url in walked if url.startswith(portal.url)]


def axe_violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def screen_name(url: str, portal: Portal) -> str:
    path = url.removeprefix(portal.url).strip("/") or "home"
    return "walk-" + re.sub(r"[^A-Za-z0-9]+", "-", path)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_has_no_serious_axe_violation_and_fits_390px(
    page: Page, portal: Portal, api: Api, theme: str
) -> None:
    # The theme comes from the system's preference here (no choice stored): that is what a
    # first visit gets; the toggle is checked in test_tables_toasts_theme.py.
    page.emulate_media(color_scheme=theme)
    seeded = seed(api)
    urls = pages_to_walk(page, portal, seeded)
    assert len(urls) >= 20, urls
    problems: dict[str, Any] = {}
    for url in urls:
        page.set_viewport_size({"width": 1440, "height": 900})
        answer = page.goto(url)
        assert answer is not None and answer.ok, f"{url}: {answer and answer.status}"
        assert page.evaluate("document.documentElement.dataset.theme") == theme
        if violations := axe_violations(page):
            problems[f"{url} (desktop)"] = violations
        page.set_viewport_size({"width": 390, "height": 844})
        page.evaluate(NEXT_FRAME)  # the page's resize handler has run
        if overflow := page.evaluate(WIDEST):
            problems[f"{url} (390 px overflow)"] = overflow
        if violations := axe_violations(page):
            problems[f"{url} (390 px)"] = violations
        snap(page, f"{screen_name(url, portal)}-{theme}")
    page.context.clear_cookies()
    page.goto(f"{portal.url}/login")
    if violations := axe_violations(page):
        problems["/login"] = violations
    snap(page, f"walk-login-{theme}")
    # The whole list, for a person to read: the assertion message is cut short.
    (ARTIFACTS / f"axe-{theme}.json").write_text(json.dumps(problems, indent=1))
    assert not problems, problems
