"""Issue 13, findings 18 and 19 in a real browser against a real `spectr run`: the Account page
changes your password, the Users page resets someone's, and the Swagger UI's "Try it out" works
with the portal's session (GET and a mutating call) and with a pasted API token.

A second sign-in of the same user is an HTTP client of its own (httpx), so "the other sessions
end" is seen from outside the browser. Screenshots go to tests/.artifacts/screens/.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from tests.browser.conftest import Portal, lost_request
from tests.browser.pages import INTERFACES_CHANGED, Api, console_errors, log_in, snap

pytestmark = [pytest.mark.slow, pytest.mark.browser]
FIRST = "first password 1"
SECOND = "second password 2"


def _new_user(api: Api, role: str = "viewer") -> str:
    name = f"pw-user-{uuid.uuid4().hex[:6]}"  # longer than the 10 characters of a password
    api.post("/users", {"username": name, "password": FIRST, "role": role})
    return name


def _other_session(portal: Portal, username: str, password: str) -> httpx.Client:
    """The same user signed in elsewhere: an HTTP client with a session cookie of its own."""
    client = httpx.Client(base_url=portal.url, timeout=30)
    answer = client.post("/login", data={"username": username, "password": password})
    assert answer.status_code == 302, answer.text
    assert client.get("/api/v1/me").status_code == 200
    return client


def _sign_in_as(page: Page, portal: Portal, username: str, password: str) -> None:
    page.context.clear_cookies()
    log_in(page, Portal(portal.url, username, password, portal.instance))


def _accept_confirmation(page: Page) -> list[str]:
    said: list[str] = []

    def answer(dialog: Dialog) -> None:
        said.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    return said


# 18 -----------------------------------------------------------------------------------------
def test_the_account_page_changes_your_password_and_signs_out_your_other_sessions(
    page: Page, portal: Portal, api: Api
) -> None:
    username = _new_user(api)
    _sign_in_as(page, portal, username, FIRST)
    elsewhere = _other_session(portal, username, FIRST)

    page.get_by_role("link", name="Account", exact=True).click()
    expect(page).to_have_title("Account · Spectr")
    expect(page.locator("#account-name")).to_have_text(username)
    expect(page.locator("#sessions tbody tr")).to_have_count(2)
    expect(page.locator("#sessions")).to_contain_text("this one")
    snap(page, "account")
    form = page.locator("#change-password form")

    form.get_by_label("Current password").fill("not it at all")
    form.get_by_label("New password", exact=True).fill(SECOND)
    form.get_by_label("New password again").fill(SECOND)
    form.get_by_role("button", name="Change password").click()
    expect(page.locator(".flash.error")).to_have_text("The current password is wrong.")

    form.get_by_label("Current password").fill(FIRST)
    form.get_by_label("New password", exact=True).fill(SECOND)
    form.get_by_label("New password again").fill(SECOND + "x")
    form.get_by_role("button", name="Change password").click()
    expect(page.locator(".flash.error")).to_contain_text("The two new passwords differ")

    form.get_by_label("Current password").fill(FIRST)
    form.get_by_label("New password", exact=True).fill(username.upper())  # passes minlength
    form.get_by_label("New password again").fill(username.upper())
    form.get_by_role("button", name="Change password").click()
    expect(page.locator(".flash.error")).to_contain_text("must not be the user name")

    form.get_by_label("Current password").fill(FIRST)
    form.get_by_label("New password", exact=True).fill(SECOND)
    form.get_by_label("New password again").fill(SECOND)
    form.get_by_role("button", name="Change password").click()
    expect(page.locator(".flash").first).to_have_text(
        "Password changed. 1 other session signed out; this one stays signed in."
    )
    expect(page.locator("#sessions tbody tr")).to_have_count(1)
    snap(page, "account-password-changed")
    assert elsewhere.get("/api/v1/me").status_code == 401
    _other_session(portal, username, SECOND)  # the new password signs in

    _sign_in_as(page, portal, portal.username, portal.password)  # the audit is the admin's
    changes = api.get(f"/audit?action=user.password.change&target=user:{username}")
    assert [event["outcome"] for event in changes] == ["success", "failed (wrong password)"]


def test_an_admin_resets_a_password_on_the_users_page(page: Page, portal: Portal, api: Api) -> None:
    username = _new_user(api, "operator")
    elsewhere = _other_session(portal, username, FIRST)

    page.goto(f"{portal.url}/admin/users")
    row = page.locator("tr", has_text=username)
    row.get_by_text("Reset password").click()
    row.get_by_label(f"New password for {username}").fill(SECOND)
    said = _accept_confirmation(page)
    row.get_by_role("button", name="Set password").click()
    expect(page.locator(".flash").first).to_have_text(
        f"Password of {username} set; 1 of {username}'s sessions signed out."
    )
    assert said == [
        f"Set a new password for {username}? Every session of {username} is signed out."
    ]
    assert elsewhere.get("/api/v1/me").status_code == 401
    _other_session(portal, username, SECOND)
    resets = api.get(f"/audit?action=user.password.reset&target=user:{username}")
    assert resets[0]["actor"] == portal.username
    # The role form of the row still saves its own fields (it no longer wraps the cells).
    row.get_by_label(f"Role of {username}").select_option("viewer")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".flash").first).to_have_text(f"User {username} updated.")
    assert next(u for u in api.get("/users") if u["username"] == username)["role"] == "viewer"
    page.locator("tr", has_text=username).get_by_text("Reset password").click()
    snap(page, "admin-users")


# 19 -----------------------------------------------------------------------------------------
def _try_it_out(
    page: Page, operation_id: str, body: Callable[[], dict] | None = None
) -> tuple[str, str]:
    """Open an operation of the Swagger UI, fill its body, execute it: its status and body.

    Chromium loses requests in flight when this machine's network interfaces change (every
    container started or removed on the shared engine): Swagger then says "Failed to fetch",
    and the operation is executed again (with a new body, so a request that did arrive is not
    sent twice), twice at most. A request lost any other way fails the test, with why.
    """
    block = page.locator(f"#{operation_id}")
    tag = operation_id.split("-")[1]  # operations-<tag>-<method>_<path>
    if not block.is_visible():  # tags start folded
        page.locator(f"#operations-tag-{tag}").click()
    block.locator(".opblock-summary-control").click()
    block.get_by_role("button", name="Try it out").click()
    lost: list[str] = []
    page.on("requestfailed", lambda sent: lost.append(lost_request(sent)))
    for attempt in range(3):
        if body is not None:
            block.locator("textarea.body-param__text").fill(json.dumps(body()))
        block.get_by_role("button", name="Execute").click()
        answer = block.locator(".live-responses-table .response").first
        expect(answer).to_contain_text(re.compile(r"^\s*\d{3}|Failed to fetch"), timeout=30_000)
        status = answer.locator(".response-col_status").inner_text().strip()
        if status:
            text = block.locator(".live-responses-table .response-col_description pre").first
            return status[:3], text.inner_text()
        dropped = lost and all(INTERFACES_CHANGED in failure for failure in lost)
        assert dropped and attempt < 2, f"Swagger's request was lost: {lost}"
        lost.clear()
    raise AssertionError("unreachable")


def test_swagger_try_it_out_works_with_the_session_and_says_how_to_use_a_token(
    page: Page, portal: Portal, api: Api, browser_context: BrowserContext
) -> None:
    with console_errors(page) as errors:
        page.goto(f"{portal.url}/api/docs")
        help_text = page.locator("#api-auth-help")
        expect(help_text).to_contain_text(f"You are signed in to the portal as {portal.username}")
        expect(help_text).to_contain_text("Authorization: Bearer <token>")
        expect(help_text).to_contain_text("spectr token create NAME")
        # every tag of the API is listed, folded
        expect(page.locator("#operations-tag-host_resources")).to_be_visible(timeout=60_000)
        expect(page.locator("h3.opblock-tag")).to_have_count(len(api.get("/openapi.json")["tags"]))

        status, body = _try_it_out(page, "operations-admin-get_api_v1_me")
        assert status == "200" and json.loads(body)["username"] == portal.username

        def new_token() -> dict:
            return {"name": f"from-swagger-{uuid.uuid4().hex[:6]}", "expires_in_days": 1}

        status, body = _try_it_out(page, "operations-admin-post_api_v1_tokens", new_token)
        assert status == "201", body
        token, name = json.loads(body)["token"], json.loads(body)["name"]
        assert name in [t["name"] for t in api.get("/tokens")]
        page.locator("#operations-admin-post_api_v1_tokens").scroll_into_view_if_needed()
        snap(page, "api-docs-try-it-out", full_page=False)  # the whole API is pages long

        # Signed out, the page says so, and the token pasted under Authorize is used instead.
        browser_context.clear_cookies()
        page.reload()
        expect(page.locator("#api-auth-help")).to_contain_text("You are not signed in")
        snap(page, "api-docs", full_page=False)
        page.locator("button.authorize").first.click()
        bearer = page.locator(".auth-container", has_text="bearerAuth")
        bearer.locator("#auth-bearer-value").fill(token)
        bearer.get_by_role("button", name="Apply credentials").click()
        bearer.get_by_role("button", name="Close").click()
        status, body = _try_it_out(page, "operations-admin-get_api_v1_me")
        assert status == "200" and json.loads(body)["username"] == portal.username
    assert errors == []
