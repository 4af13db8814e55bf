"""Callbacks: the final state POSTed to the caller's URL, signed with the user's secret."""

from __future__ import annotations

import hashlib
import hmac
import json


def test_callback_is_signed_with_the_users_secret(api_as, receiver):
    api = api_as("operator")
    secret = api.post("/api/v1/me/webhook-secret").get_json()["webhook_secret"]
    hook = receiver()
    op = api.post("/api/v1/operations", json={"kind": "noop", "callback_url": hook.url}).get_json()
    assert len(hook.received) == 1
    headers, body = hook.received[0]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Spectr-Signature"] == f"sha256={expected}"
    assert json.loads(body)["id"] == op["id"]
    assert json.loads(body)["state"] == "succeeded"
    assert api.get(f"/api/v1/operations/{op['id']}").get_json()["callback_state"] == "delivered"


def test_callback_is_retried_until_the_receiver_answers(api_as, receiver, monkeypatch):
    monkeypatch.setattr("portal.core.operations.callbacks.random.uniform", lambda a, b: 0.01)
    api = api_as("operator")
    hook = receiver(failures=2)
    op = api.post("/api/v1/operations", json={"kind": "noop", "callback_url": hook.url}).get_json()
    assert len(hook.received) == 3
    assert [headers["X-Spectr-Delivery-Attempt"] for headers, _ in hook.received] == ["1", "2", "3"]
    body = api.get(f"/api/v1/operations/{op['id']}").get_json()
    assert (body["callback_state"], body["callback_attempts"]) == ("delivered", 3)
