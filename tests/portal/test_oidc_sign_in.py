"""OpenID Connect sign-in against a real provider (oidc-provider on Node.js, 127.0.0.1): the
portal in-process through Flask's test client, the provider's pages driven with httpx over
real HTTP. The browser test (tests/browser/test_sign_in_sso.py) does the same in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.admin import service
from portal.admin.models import User
from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.settings.service import update_settings
from tests.portal.conftest import ApiClient
from tests.support.oidc_provider import OidcProvider, running_provider, settings_for

PORTAL = "http://localhost"  # the test client's own address
CALLBACK = f"{PORTAL}/login/sso/callback"
ACCOUNTS = {"carol": ["spectr-operators"], "ada": ["spectr-admins", "x"], "nemo": ["unmapped"]}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc"), PORTAL, ACCOUNTS) as started:
        yield started


@pytest.fixture
def sso_app(app: Flask, provider: OidcProvider) -> Iterator[Flask]:
    provider.tamper()  # a well-behaved provider unless a test says otherwise
    update_settings(settings_for(provider), "test")
    yield app
    provider.tamper()


def _to_provider(browser: FlaskClient) -> str:
    answer = browser.get("/login/sso")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return answer.headers["Location"]


def _provider_sign_in(url: str, login: str) -> str:
    """Sign in at the provider's own form; the URL it sends the browser back to."""
    with httpx.Client() as http:
        page = http.get(url, follow_redirects=True)
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)[1]
        answer = http.post(action, data={"prompt": "login", "login": login, "password": "any"})
        while answer.is_redirect:
            location = answer.headers["Location"]
            if location.startswith(CALLBACK):
                return location
            answer = http.get(httpx.URL(str(answer.url)).join(location))
    raise AssertionError(f"the provider did not send the browser back: {answer.text[:500]}")


def _come_back(browser: FlaskClient, url: str) -> Any:
    parts = urlsplit(url)
    return browser.get(f"{parts.path}?{parts.query}")


def _sign_in(browser: FlaskClient, login: str) -> Any:
    return _come_back(browser, _provider_sign_in(_to_provider(browser), login))


def _last_login(outcome_prefix: str = "") -> AuditEvent:
    return db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "session.login", AuditEvent.outcome.startswith(outcome_prefix))
        .order_by(AuditEvent.id.desc())
    ).first()


def test_the_authorization_request_uses_pkce_state_and_nonce(sso_app: Flask) -> None:
    query = parse_qs(urlsplit(_to_provider(sso_app.test_client())).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["nonce"][0]
    assert query["redirect_uri"] == [CALLBACK]


def test_a_person_signs_in_and_gets_the_role_of_their_groups(
    sso_app: Flask, provider: OidcProvider
) -> None:
    browser = sso_app.test_client()
    answer = _sign_in(browser, "carol")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    me = browser.get("/api/v1/me").get_json()
    assert (me["username"], me["role"], me["source"]) == ("carol", "operator", "oidc")
    user = db.session.scalar(select(User).filter_by(username="carol"))
    assert user.external_id == f"{provider.issuer}|carol"
    assert _last_login().details == {"method": "oidc"}

    admin = sso_app.test_client()
    _sign_in(admin, "ada")
    assert admin.get("/api/v1/me").get_json()["role"] == "admin"


def test_logout_ends_the_session_at_the_provider_too(
    sso_app: Flask, provider: OidcProvider
) -> None:
    browser = sso_app.test_client()
    _sign_in(browser, "carol")
    page = browser.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
    answer = browser.post("/logout", data={"csrf_token": token})
    location = answer.headers["Location"]
    assert location.startswith(f"{provider.issuer}/session/end?")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == ["http://localhost/login"]
    assert query["id_token_hint"][0].count(".") == 2
    assert browser.get("/api/v1/me").status_code == 401


def test_a_replayed_answer_is_refused_even_with_a_copied_cookie(sso_app: Flask) -> None:
    browser = sso_app.test_client()
    back = _provider_sign_in(_to_provider(browser), "carol")
    saved = browser.get_cookie("session").value
    assert _come_back(browser, back).status_code == 302

    thief = sso_app.test_client()
    thief.set_cookie("session", saved)
    refused = _come_back(thief, back)
    assert refused.status_code == 401
    assert "already used (replayed state)" in refused.get_data(as_text=True)
    assert _last_login().outcome == "failed (replayed state)"
    assert thief.get("/api/v1/me").status_code == 401


def test_an_answer_for_a_sign_in_started_elsewhere_is_refused(sso_app: Flask) -> None:
    victim = sso_app.test_client()
    back = _provider_sign_in(_to_provider(victim), "carol")
    forced = _come_back(sso_app.test_client(), back)  # login CSRF: another browser
    assert forced.status_code == 401
    assert "not belong to a sign-in started in this browser" in forced.get_data(as_text=True)
    assert _last_login().outcome == "failed (state mismatch)"


@pytest.mark.parametrize(
    ("tamper", "reason", "words"),
    [
        ({"audience": "some-other-app"}, "wrong audience", "The ID token is meant for"),
        ({"signature": "bad"}, "bad signature", "signature does not verify"),
        ({"nonce": "from-another-sign-in"}, "wrong nonce", "nonce is not the one"),
    ],
)
def test_a_misbehaving_provider_is_refused_with_what_was_wrong(
    sso_app: Flask, provider: OidcProvider, tamper: dict[str, str], reason: str, words: str
) -> None:
    provider.tamper(**tamper)
    browser = sso_app.test_client()
    answer = _sign_in(browser, "carol")
    assert answer.status_code == 401
    assert words in answer.get_data(as_text=True)
    assert _last_login().outcome == f"failed ({reason})"
    assert browser.get("/api/v1/me").status_code == 401


def test_the_answer_to_an_older_sign_in_of_the_same_browser_is_refused(sso_app: Flask) -> None:
    # Two sign-ins in one browser: the answer to the first arrives after the second started,
    # so the state (and nonce) the browser holds is the second's.
    browser = sso_app.test_client()
    first = _provider_sign_in(_to_provider(browser), "carol")
    _to_provider(browser)
    answer = _come_back(browser, first)
    assert answer.status_code == 401
    assert _last_login().outcome == "failed (state mismatch)"


def test_groups_that_give_no_role_are_refused(sso_app: Flask) -> None:
    answer = _sign_in(sso_app.test_client(), "nemo")
    assert answer.status_code == 401
    assert "None of your groups gives you a role" in answer.get_data(as_text=True)
    assert _last_login().outcome == "failed (no role)"
    assert db.session.scalar(select(User).filter_by(username="nemo")) is None


def test_the_admin_test_action_reads_discovery_and_keys(
    sso_app: Flask, provider: OidcProvider, create_user: Callable[..., Any], tmp_path: Path
) -> None:
    _, token = service.create_token(create_user("admin"), "t", 1)
    api = ApiClient(sso_app.test_client(), token)
    good = api.post("/api/v1/sign-in/sso/test").get_json()
    assert good["ok"] is True
    assert good["steps"][0] == f"discovered {provider.issuer}"
    update_settings({"oidc_issuer": provider.issuer + "/elsewhere"}, "test")
    bad = api.post("/api/v1/sign-in/sso/test").get_json()
    assert (bad["ok"], bad["reason"]) == (False, "provider_unreachable")
    assert "404" in bad["message"]
    settings = api.get("/api/v1/settings").get_data(as_text=True)
    assert "provider-client-secret" not in settings


def test_only_one_of_two_copies_of_an_answer_signs_in_on_each_database(
    any_db_app: Flask, provider: OidcProvider
) -> None:
    provider.tamper()
    update_settings(settings_for(provider), "test")
    browser = any_db_app.test_client()
    back = _provider_sign_in(_to_provider(browser), "carol")
    copy = any_db_app.test_client()
    copy.set_cookie("session", browser.get_cookie("session").value)
    answers = [_come_back(browser, back).status_code, _come_back(copy, back).status_code]
    assert sorted(answers) == [302, 401]
    assert _last_login().outcome == "failed (replayed state)"
