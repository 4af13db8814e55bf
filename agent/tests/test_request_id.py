"""Request ids through a real agent process: echoed on every answer, written on the log line."""

from __future__ import annotations

import re
import time

import pytest

from agent.tests.harness import AgentProcess

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def wait_for_log_line(agent: AgentProcess, text: str, timeout_s: float = 10.0) -> None:
    """Poll the agent's log for a line ending in text (a hang guard, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(line.endswith(text) for line in agent.log_path.read_text().splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no log line ends with {text!r}:\n{agent.log_path.read_text()[-2000:]}")


def test_caller_request_id_is_echoed_and_logged_per_request(agent_factory, pki):
    own = agent_factory()
    with own.http(pki.ca.cert_path) as api:
        # One kept-alive connection: each request keeps its own id.
        first = api.get("/v1/health", headers={"X-Request-Id": "op-17.portal-a1"})
        second = api.get("/v1/no-such-thing", headers={"X-Request-Id": "op-18"})
        third = api.get("/v1/health")
    with own.http(pki.ca.cert_path, token="wrong") as stranger:
        refused = stranger.get("/v1/health", headers={"X-Request-Id": "op-19"})

    assert first.headers["X-Request-Id"] == "op-17.portal-a1"
    assert (second.status_code, second.headers["X-Request-Id"]) == (404, "op-18")
    generated = third.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (refused.status_code, refused.headers["X-Request-Id"]) == (401, "op-19")
    for line in (
        "GET /v1/health 200 request_id=op-17.portal-a1",
        "GET /v1/no-such-thing 404 request_id=op-18",
        f"GET /v1/health 200 request_id={generated}",
        "GET /v1/health 401 request_id=op-19",
    ):
        wait_for_log_line(own, line)


def test_request_id_that_is_not_a_plain_token_is_replaced(agent, pki):
    with agent.http(pki.ca.cert_path) as api:
        reply = api.get("/v1/health", headers={"X-Request-Id": "x" * 65})
        spaced = api.get("/v1/health", headers={"X-Request-Id": "a b\tc"})
    for answer in (reply, spaced):
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])
