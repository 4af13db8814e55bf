"""Callbacks and webhooks never reach link-local or cloud-metadata addresses, and an allow-list
keeps them inside the networks an installation names: real HTTP, a real receiver on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from portal.admin import service
from portal.extensions import db
from tests.portal.conftest import PASSWORD, ApiClient, _make_sqlite_app


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]:8080/hook",
        "http://100.100.100.200/",
        "http://224.0.0.1/",
    ],
)
def test_a_callback_to_a_metadata_or_link_local_address_is_a_422(api_as: Any, url: str) -> None:
    answer = api_as("operator").post(
        "/api/v1/operations", json={"kind": "noop", "callback_url": url}
    )
    assert answer.status_code == 422
    errors = answer.get_json()["details"]["callback_url"]
    assert any("Spectr does not send requests to" in e and "refused" in e for e in errors)


def test_a_webhook_to_the_metadata_address_is_a_422(api_as: Any) -> None:
    answer = api_as("admin").post(
        "/api/v1/monitoring/webhooks",
        json={"name": "meta", "url": "http://169.254.169.254/"},
    )
    assert answer.status_code == 422
    assert "url" in answer.get_json()["details"]


@pytest.fixture
def walled_app(tmp_path: Path, sqlite_template: Path) -> Iterator[Flask]:
    """A portal whose callbacks may go to 10.0.0.0/8 only, and never to 127.0.0.0/8."""
    app = _make_sqlite_app(
        tmp_path,
        sqlite_template,
        SPECTR_OUTBOUND_ALLOW_NETWORKS="10.0.0.0/8, 127.0.0.0/8",
        SPECTR_OUTBOUND_DENY_NETWORKS="169.254.0.0/16,127.0.0.0/8",
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _operator(app: Flask) -> ApiClient:
    user = service.create_user(f"op-{uuid.uuid4().hex[:6]}", PASSWORD, "operator")
    _, token = service.create_token(user, "t", 1)
    return ApiClient(app.test_client(), token)


def test_an_allow_list_refuses_everything_outside_it(walled_app: Flask) -> None:
    answer = _operator(walled_app).post(
        "/api/v1/operations", json={"kind": "noop", "callback_url": "http://192.0.2.10/hook"}
    )
    assert answer.status_code == 422
    assert "outside SPECTR_OUTBOUND_ALLOW_NETWORKS" in str(answer.get_json())


def test_a_name_that_resolves_to_a_denied_address_is_never_called(
    walled_app: Flask, receiver: Any
) -> None:
    hook = receiver()
    by_name = hook.url.replace("127.0.0.1", "localhost")  # checked when sent, once resolved
    answer = _operator(walled_app).post(
        "/api/v1/operations", json={"kind": "noop", "callback_url": by_name}
    )
    assert answer.status_code == 202, answer.get_json()
    operation = _operator(walled_app).get(f"/api/v1/operations/{answer.get_json()['id']}")
    assert operation.get_json()["callback_state"] == "failed: address refused"
    assert operation.get_json()["callback_attempts"] == 1
    assert hook.received == []


def test_a_malformed_network_setting_stops_the_start_naming_it(
    tmp_path: Path, sqlite_template: Path
) -> None:
    with pytest.raises(ValueError, match="SPECTR_OUTBOUND_ALLOW_NETWORKS"):
        _make_sqlite_app(tmp_path, sqlite_template, SPECTR_OUTBOUND_ALLOW_NETWORKS="10.0.0/33")
