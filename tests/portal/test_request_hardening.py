"""Bad or oversized input gets a 4xx that names what was wrong, never a 500 and never a row.

Each test sends real HTTP through the Flask test client; the ones where the database decides
(NUL characters, integer and text sizes) run on SQLite and on the real Postgres.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from flask import Flask

from portal.extensions import db
from tests.portal.conftest import ApiClient

MIB = 1024 * 1024
KEY_HEAD = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
KEY_TAIL = "\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture
def db_api(any_db_app: Flask) -> ApiClient:
    """An admin's API client on the portal of each database."""
    from portal.admin import service

    user = service.create_user(f"admin-{uuid.uuid4().hex[:6]}", "correct horse battery", "admin")
    _, token = service.create_token(user, "test", 1)
    return ApiClient(any_db_app.test_client(), token)


@pytest.fixture
def admin_api(api_as: Any) -> ApiClient:
    return api_as("admin")


def host_body(**changes: Any) -> dict[str, Any]:
    return {"name": "h1", "address": "192.0.2.10", "ssh_password": "pw", **changes}


def assert_refused(answer: Any, field: str, status: int = 422) -> None:
    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    assert answer.json["code"] != "internal_error"
    assert field in answer.json["details"] or field in answer.json["message"], answer.json


def an_operation() -> str:
    from portal.core.operations import service

    operation, _ = service.create_operation("noop", {}, target=None, requested_by=None)
    return operation.id


# P2: request bodies are limited, except the two streaming uploads.


def test_a_json_body_over_the_limit_is_413_and_nothing_is_stored(admin_api: ApiClient) -> None:
    body = host_body(labels={"pad": "x" * 200, **{f"k{i}": "y" * 255 for i in range(8300)}})
    answer = admin_api.post("/api/v1/hosts", data=json.dumps(body), content_type="application/json")
    assert answer.status_code == 413
    assert answer.json["code"] == "payload_too_large"
    assert "of 1048576 bytes" in answer.json["message"]
    assert admin_api.get("/api/v1/hosts").json == []


def test_a_chunked_body_without_content_length_is_still_limited(admin_api: ApiClient) -> None:
    head = b'{"name": "h1", "address": "192.0.2.10", "ssh_password": "pw", "labels": {"a": "'
    answer = admin_api.post(
        "/api/v1/hosts",
        input_stream=io.BytesIO(head + b"x" * (2 * MIB) + b'"}}'),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as a server that de-chunks does
    )
    assert answer.status_code == 413, answer.json
    assert answer.json["code"] == "payload_too_large"
    assert admin_api.get("/api/v1/hosts").json == []


@pytest.mark.usefixtures("loopback_only_network")
def test_the_streaming_upload_endpoints_still_take_large_bodies(admin_api: ApiClient) -> None:
    from portal.registry.models import SPECTR, Registry

    db.session.add(Registry(name="spectr", kind=SPECTR, url="https://127.0.0.1:9"))
    db.session.commit()
    body = b"\0" * (2 * MIB)
    for path, kind in (
        ("/api/v1/models/uploads?name=big&filename=big.gguf", "application/octet-stream"),
        ("/api/v1/registries/spectr/imports?repository=big", "application/x-tar"),
    ):
        answer = admin_api.post(path, data=body, content_type=kind)
        assert answer.status_code == 202, (path, answer.json)


# P4: bad input of every kind is a 4xx naming the field.


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/proxy/keys", {"name": "a\x00b"}, "name"),
        ("/api/v1/hosts", host_body(ssh_password="p\x00w"), "ssh_password"),
        ("/api/v1/hosts", host_body(labels={"team": "a\x00"}), "labels.team"),
    ],
)
def test_nul_characters_in_json_are_refused(
    db_api: ApiClient, path: str, body: dict, field: str
) -> None:
    assert_refused(db_api.post(path, json=body), field)
    assert db_api.get(path).json == []


def test_nul_characters_in_query_arguments_are_refused(db_api: ApiClient) -> None:
    assert_refused(db_api.get("/api/v1/hosts?label=a%00b"), "label")
    assert_refused(db_api.get("/api/v1/operations?kind=no%00op"), "kind")


@pytest.mark.parametrize("field", ["rpm", "tpm", "budget_tokens"])
def test_integers_over_the_column_are_refused(db_api: ApiClient, field: str) -> None:
    body = {"name": "k", field: 2**31}
    if field == "budget_tokens":
        body["budget_period"] = "day"
    assert_refused(db_api.post("/api/v1/proxy/keys", json=body), field)
    assert db_api.get("/api/v1/proxy/keys").json == []


@pytest.mark.parametrize("after", [2**31, 2**64])
def test_integers_over_the_column_in_query_arguments_are_refused(
    db_api: ApiClient, after: int
) -> None:
    answer = db_api.get(f"/api/v1/operations/{an_operation()}/log?after={after}")
    assert_refused(answer, "after")


def test_an_integer_longer_than_python_reads_is_refused(admin_api: ApiClient) -> None:
    body = '{"kind": "noop", "params": {"n": ' + "9" * 5000 + "}}"
    answer = admin_api.post("/api/v1/operations", data=body, content_type="application/json")
    assert_refused(answer, "params.n")


def test_json_nested_too_deep_is_refused(admin_api: ApiClient) -> None:
    body = '{"kind": "noop", "params": ' + "[" * 1000 + "]" * 1000 + "}"
    answer = admin_api.post("/api/v1/operations", data=body, content_type="application/json")
    assert answer.status_code == 400 and "nested" in answer.json["message"]
    assert admin_api.get("/api/v1/operations").json == []


def test_an_idempotency_key_over_255_characters_is_refused(db_api: ApiClient) -> None:
    answer = db_api.post(
        "/api/v1/operations", json={"kind": "noop"}, headers={"Idempotency-Key": "k" * 256}
    )
    assert_refused(answer, "Idempotency-Key", 400)
    assert db_api.get("/api/v1/operations").json == []


def test_a_last_event_id_that_is_not_a_number_is_refused(admin_api: ApiClient) -> None:
    path = f"/api/v1/operations/{an_operation()}/log?follow=1"
    for value in ("abc", str(2**64), "-1"):
        answer = admin_api.get(path, headers={"Last-Event-ID": value})
        assert_refused(answer, "Last-Event-ID", 400)


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_moment_outside_the_calendar_after_its_zone_is_refused(
    admin_api: ApiClient, since: str
) -> None:
    answer = admin_api.get("/api/v1/operations", query_string={"since": since})
    assert_refused(answer, "since")


@pytest.mark.parametrize("url", ["http://a..b", "https://.example", "http://-a.example:5000"])
def test_a_registry_url_with_an_empty_or_bad_label_is_refused(
    admin_api: ApiClient, url: str
) -> None:
    answer = admin_api.post("/api/v1/registries", json={"name": "r", "url": url})
    assert_refused(answer, "url")


def test_an_ssh_key_longer_than_its_column_is_refused(db_api: ApiClient) -> None:
    key = KEY_HEAD + "A" * 7000 + KEY_TAIL
    body = host_body(ssh_password=None, ssh_private_key=key)
    del body["ssh_password"]
    assert_refused(db_api.post("/api/v1/hosts", json=body), "ssh_private_key")
    assert db_api.get("/api/v1/hosts").json == []


@pytest.mark.parametrize("address", ["256.1.1.1", ":::::", "1.2.3", "a..b", "-a.example", "a_b"])
def test_addresses_that_are_neither_ip_nor_name_are_refused(
    admin_api: ApiClient, address: str
) -> None:
    assert_refused(admin_api.post("/api/v1/hosts", json=host_body(address=address)), "address")


@pytest.mark.parametrize("address", ["192.0.2.1", "2001:db8::1", "::1", "gpu-01.lab.example"])
def test_ip_addresses_and_host_names_are_accepted(admin_api: ApiClient, address: str) -> None:
    assert admin_api.post("/api/v1/hosts", json=host_body(address=address)).status_code == 201
