"""Issue 16 in a real browser against a real `spectr run`: an admin configures the directory
(Debian's slapd, StartTLS with a test CA) and the OpenID provider (oidc-provider on Node.js) on
the Sign-in page and tests both there; a directory user signs in with the login form; another
person signs in through the provider's redirect flow and signs out at the provider too.

Screenshots go to tests/.artifacts/screens/ (sign-in-*).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal, running_portal
from tests.browser.pages import Api, log_in, snap
from tests.support import slapd
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, running_provider
from tests.support.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, Slapd

pytestmark = [pytest.mark.slow, pytest.mark.browser]
BOB = "bob-directory-1"


@pytest.fixture(scope="module")
def sign_in_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """A portal of its own: these tests change how everyone signs in."""
    with running_portal(tmp_path_factory.mktemp("sign-in-portal")) as started:
        yield started


@pytest.fixture(scope="module")
def ldap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with slapd.seeded(tmp_path_factory.mktemp("slapd")) as server:
        bob = server.add_person("bob", BOB)
        team = server.add_group("ops-team", [bob])
        server.add_group("spectr-operators", [team])
        yield server


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, sign_in_portal: Portal
) -> Iterator[OidcProvider]:
    with running_provider(
        tmp_path_factory.mktemp("oidc"), sign_in_portal.url, {"carol": ["spectr-admins"]}
    ) as started:
        yield started


def _fill(page: Page, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.fill(f"[name={name}]", value)


def test_an_admin_sets_up_the_directory_and_sso_then_people_sign_in_with_them(
    page: Page, sign_in_portal: Portal, ldap_server: Slapd, provider: OidcProvider, tmp_path: Path
) -> None:
    log_in(page, sign_in_portal)
    page.click("nav >> text=Sign-in")
    page.check("[name=ldap_enabled]")
    page.uncheck("[name=ldap_start_tls]")
    page.check("[name=ldap_start_tls]")
    _fill(
        page,
        {
            "ldap_url": ldap_server.ldap_url,
            "ldap_bind_dn": SERVICE_DN,
            "ldap_bind_password": SERVICE_PASSWORD,
            "ldap_user_base": f"ou=people,{BASE}",
            "ldap_user_filter": "(objectClass=inetOrgPerson)",
            "ldap_group_base": f"ou=groups,{BASE}",
            "ldap_operator_groups": f"cn=spectr-operators,ou=groups,{BASE}",
            "ldap_ca_certificate": ldap_server.ca_pem,
        },
    )
    page.check("[name=oidc_enabled]")
    _fill(
        page,
        {
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_scopes": "openid profile email groups",
            "oidc_admin_values": "spectr-admins",
        },
    )
    page.click("text=Save sign-in settings")
    expect(page.locator(".flash")).to_contain_text("Sign-in settings saved.")
    expect(page.locator("#callback-url")).to_have_text(f"{sign_in_portal.url}/login/sso/callback")

    page.fill("#test-directory [name=username]", "bob")
    page.click("text=Test connection / user")
    result = page.locator("#test-result")
    expect(result).to_contain_text("Works.")
    expect(result).to_contain_text("StartTLS done, certificate verified")
    expect(result).to_contain_text("role operator from its groups")
    snap(page, "sign-in-admin-directory-test")
    page.set_viewport_size({"width": 390, "height": 844})
    result.scroll_into_view_if_needed()
    page.screenshot(path="tests/.artifacts/screens/sign-in-admin-directory-result-phone.png")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.fill("#test-directory [name=password]", "not bob's password")
    page.click("text=Test connection / user")
    expect(page.locator("#test-result")).to_contain_text(
        "Failed: The directory refused the password of uid=bob"
    )
    page.locator("#test-result").scroll_into_view_if_needed()
    page.screenshot(path="tests/.artifacts/screens/sign-in-admin-directory-failure-desktop.png")
    page.click("text=Test discovery and keys")
    expect(page.locator("#test-result")).to_contain_text(f"discovered {provider.issuer}")

    # A directory user with the login form.
    page.context.clear_cookies()
    page.goto(f"{sign_in_portal.url}/login")
    expect(page.locator("#sso-sign-in")).to_have_text("Sign in with SSO")
    snap(page, "sign-in-login-page")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "not bob's password")
    page.click("button[type=submit]")
    expect(page.locator(".flash.error")).to_have_text("Wrong user name or password.")
    page.fill("input[name=password]", BOB)
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_contain_text("bob (operator)")
    page.goto(f"{sign_in_portal.url}/account")
    expect(page.locator("#account-source")).to_have_text("the directory (LDAP / AD)")
    snap(page, "sign-in-account-directory-user")

    # Someone else through the provider's real redirect flow.
    page.context.clear_cookies()
    page.goto(f"{sign_in_portal.url}/login")
    page.click("#sso-sign-in")
    page.wait_for_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    page.fill("input[name=login]", "carol")
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.wait_for_url(f"{sign_in_portal.url}/")
    expect(page.locator("nav")).to_contain_text("carol (admin)")
    page.click("nav >> text=Users")
    expect(page.locator("tr", has_text="bob")).to_contain_text("directory")
    expect(page.locator("tr", has_text="carol")).to_contain_text("kept by the SSO provider")
    snap(page, "sign-in-users-page")

    # Logging out signs out at the provider too, then comes back to the login page.
    page.click("nav button[title='Log out']")
    page.wait_for_url(re.compile(re.escape(provider.issuer)))
    page.click("button[autofocus], button[type=submit] >> nth=0")
    page.wait_for_url(f"{sign_in_portal.url}/login")
    page.click("#sso-sign-in")
    page.wait_for_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    expect(page.locator("input[name=login]")).to_be_visible()  # no session left there


def test_a_local_user_turns_on_two_factor_sign_in_and_signs_in_with_a_code(
    page: Page, sign_in_portal: Portal
) -> None:
    log_in(page, sign_in_portal)
    name = f"totp-{uuid.uuid4().hex[:6]}"
    Api(page, sign_in_portal).post(
        "/users", {"username": name, "password": "local password 1", "role": "viewer"}
    )
    me = Portal(sign_in_portal.url, name, "local password 1", sign_in_portal.instance)
    page.context.clear_cookies()
    log_in(page, me)
    page.goto(f"{sign_in_portal.url}/account")
    page.click("text=Set up two-factor sign-in")
    authenticator = pyotp.TOTP(page.locator("#totp-key").inner_text())
    snap(page, "sign-in-totp-enrol")
    page.fill("#two-factor [name=code]", authenticator.now())
    page.click("#two-factor >> text=Turn on")
    expect(page.locator(".flash")).to_contain_text("Two-factor sign-in is on")

    page.context.clear_cookies()
    page.goto(f"{sign_in_portal.url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "local password 1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{sign_in_portal.url}/login/code")
    snap(page, "sign-in-totp-code")
    page.fill("[name=code]", authenticator.now())
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_contain_text(f"{name} (viewer)")
