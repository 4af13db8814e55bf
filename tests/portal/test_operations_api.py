"""The operations API: 202 + Location, states, filters, logs, idempotency, cancel, errors."""

from __future__ import annotations

import json

import pytest


def test_create_answers_202_with_location_and_runs(api_as):
    api = api_as("operator")
    response = api.post("/api/v1/operations", json={"kind": "noop"})
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/operations/{body['id']}"
    shown = api.get(response.headers["Location"]).get_json()
    assert shown["state"] == "succeeded"
    assert shown["result"] == {"noop": True}
    assert shown["attempts"] == 1
    assert shown["requested_by"].startswith("operator-")
    assert shown["finished_at"].endswith("+00:00")


def test_sleep_operation_writes_log_and_progress(api_as):
    api = api_as("operator")
    op = api.post(
        "/api/v1/operations", json={"kind": "sleep", "params": {"seconds": 0.2}}
    ).get_json()
    log = api.get(f"/api/v1/operations/{op['id']}/log").get_json()
    assert log["state"] == "succeeded"
    messages = [line["message"] for line in log["lines"]]
    assert messages[-1] == "slept 0.20 of 0.2 s"
    assert len(messages) >= 1
    after = log["lines"][0]["id"]
    later = api.get(f"/api/v1/operations/{op['id']}/log?after={after}").get_json()["lines"]
    assert [line["id"] for line in later] == [line["id"] for line in log["lines"][1:]]
    assert api.get(f"/api/v1/operations/{op['id']}").get_json()["progress"] == 1.0


def test_log_follow_streams_server_sent_events_until_the_end(api_as):
    api = api_as("operator")
    op = api.post(
        "/api/v1/operations", json={"kind": "sleep", "params": {"seconds": 0.1}}
    ).get_json()
    response = api.get(f"/api/v1/operations/{op['id']}/log?follow=1")
    assert response.mimetype == "text/event-stream"
    text = response.get_data(as_text=True)
    events = [block for block in text.split("\n\n") if block.startswith("id:") or "event:" in block]
    assert any("event: line" in block for block in events)
    assert events[-1].startswith("event: end")
    end = json.loads(events[-1].split("data: ", 1)[1])
    assert end["state"] == "succeeded"
    # The operation page shows attempts and the progress message live from these events.
    assert end["attempts"] == 1 and end["max_attempts"] >= 1
    assert end["progress_message"].startswith("step ")


def test_transient_failures_retry_then_succeed(api_as):
    api = api_as("operator")
    params = {"seconds": 0, "fail_attempts": 2}
    op = api.post("/api/v1/operations", json={"kind": "sleep", "params": params}).get_json()
    shown = api.get(f"/api/v1/operations/{op['id']}").get_json()
    assert shown["state"] == "succeeded"
    assert shown["attempts"] == 3
    lines = api.get(f"/api/v1/operations/{op['id']}/log").get_json()["lines"]
    assert sum("Transient failure: planned failure" in line["message"] for line in lines) == 2


def test_transient_failures_give_up_after_max_attempts(api_as):
    api = api_as("operator")
    body = {"kind": "sleep", "params": {"seconds": 0, "fail_attempts": 5}, "max_attempts": 2}
    op = api.post("/api/v1/operations", json=body).get_json()
    shown = api.get(f"/api/v1/operations/{op['id']}").get_json()
    assert shown["state"] == "failed"
    assert shown["attempts"] == 2
    assert shown["error"] == "planned failure on attempt 2 (gave up after 2 attempts)"


def test_permanent_failure_fails_at_once(api_as):
    api = api_as("operator")
    params = {"seconds": 0, "fail_attempts": 1, "fail_mode": "permanent"}
    op = api.post("/api/v1/operations", json={"kind": "sleep", "params": params}).get_json()
    shown = api.get(f"/api/v1/operations/{op['id']}").get_json()
    assert (shown["state"], shown["attempts"]) == ("failed", 1)
    assert shown["error"] == "planned failure on attempt 1"


def test_idempotency_key_returns_the_same_operation(api_as):
    api = api_as("operator")
    headers = {"Idempotency-Key": "deploy-42"}
    first = api.post("/api/v1/operations", json={"kind": "noop"}, headers=headers)
    second = api.post("/api/v1/operations", json={"kind": "noop"}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.get_json()["id"] == second.get_json()["id"]
    assert api.get("/api/v1/operations").headers["X-Pagination"]
    assert len(api.get("/api/v1/operations").get_json()) == 1


def test_idempotency_key_reused_for_another_request_is_a_conflict(api_as):
    api = api_as("operator")
    headers = {"Idempotency-Key": "k1"}
    api.post("/api/v1/operations", json={"kind": "noop"}, headers=headers)
    response = api.post(
        "/api/v1/operations", json={"kind": "sleep", "params": {"seconds": 0}}, headers=headers
    )
    assert response.status_code == 409
    assert response.get_json()["code"] == "conflict"
    assert "Idempotency-Key" in response.get_json()["message"]


def test_list_filters_and_paginates(api_as):
    api = api_as("operator")
    for _ in range(3):
        api.post("/api/v1/operations", json={"kind": "noop", "target": "host:1"})
    api.post("/api/v1/operations", json={"kind": "sleep", "params": {"seconds": 0}})
    assert len(api.get("/api/v1/operations?kind=noop").get_json()) == 3
    assert len(api.get("/api/v1/operations?target=host:1").get_json()) == 3
    assert len(api.get("/api/v1/operations?state=failed").get_json()) == 0
    page = api.get("/api/v1/operations?page=2&page_size=3")
    assert len(page.get_json()) == 1
    assert json.loads(page.headers["X-Pagination"])["total"] == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"kind": "noop", "max_attempts": 0}, "max_attempts"),
        ({"kind": "noop", "callback_url": "ftp://x"}, "callback_url"),
        ({}, "kind"),
    ],
)
def test_invalid_input_is_422_naming_the_field(api_as, body, field):
    response = api_as("operator").post("/api/v1/operations", json=body)
    assert response.status_code == 422
    error = response.get_json()
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert field in error["message"]


def test_invalid_sleep_params_are_422(api_as):
    response = api_as("operator").post(
        "/api/v1/operations", json={"kind": "sleep", "params": {"seconds": -1, "bogus": 1}}
    )
    assert response.status_code == 422
    assert set(response.get_json()["details"]) == {"seconds", "bogus"}


def test_malformed_json_is_a_4xx_not_a_500(api_as):
    response = api_as("operator").post(
        "/api/v1/operations", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert set(response.get_json()) == {"code", "message", "details"}


def test_unknown_operation_is_404(api_as):
    response = api_as("viewer").get("/api/v1/operations/does-not-exist")
    assert response.status_code == 404
    assert response.get_json() == {
        "code": "not_found",
        "message": "No operation with id 'does-not-exist'.",
        "details": {},
    }


def test_roles_are_enforced(client, api_as):
    assert client.get("/api/v1/operations").status_code == 401
    viewer = api_as("viewer")
    assert viewer.get("/api/v1/operations").status_code == 200
    denied = viewer.post("/api/v1/operations", json={"kind": "noop"})
    assert denied.status_code == 403
    assert "operator" in denied.get_json()["message"]


def test_cancel_a_finished_operation_is_a_conflict(api_as):
    api = api_as("operator")
    op = api.post("/api/v1/operations", json={"kind": "noop"}).get_json()
    response = api.post(f"/api/v1/operations/{op['id']}/cancel")
    assert response.status_code == 409
