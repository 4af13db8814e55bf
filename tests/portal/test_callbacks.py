"""Callbacks: the final state POSTed to the caller's URL, signed with the user's secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                status = 503 if len(receiver.calls) <= receiver.fail_first else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kwargs: int) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for item in made:
        item.server.shutdown()
        item.server.server_close()


def test_callback_is_signed_with_the_users_secret(api_as, receiver):
    api = api_as("operator")
    secret = api.post("/api/v1/me/webhook-secret").get_json()["webhook_secret"]
    hook = receiver()
    op = api.post("/api/v1/operations", json={"kind": "noop", "callback_url": hook.url}).get_json()
    assert len(hook.calls) == 1
    headers, body = hook.calls[0]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Spectr-Signature"] == f"sha256={expected}"
    assert json.loads(body)["id"] == op["id"]
    assert json.loads(body)["state"] == "succeeded"
    assert api.get(f"/api/v1/operations/{op['id']}").get_json()["callback_state"] == "delivered"


def test_callback_is_retried_until_the_receiver_answers(api_as, receiver, monkeypatch):
    monkeypatch.setattr("portal.core.operations.callbacks.random.uniform", lambda a, b: 0.01)
    api = api_as("operator")
    hook = receiver(fail_first=2)
    op = api.post("/api/v1/operations", json={"kind": "noop", "callback_url": hook.url}).get_json()
    assert len(hook.calls) == 3
    assert api.get(f"/api/v1/operations/{op['id']}").get_json()["callback_state"] == "delivered"
