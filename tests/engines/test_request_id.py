"""The portal's request id reaches a real agent: from a request, and from a worker's operation."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator

import pytest
from flask import Flask, g

from agent.tests.harness import AgentProcess
from portal.app import create_app
from portal.core.logging import request_id_bound
from portal.core.operations import kinds
from portal.engines import AgentEngine, RetryPolicy
from portal.engines.resilience import CircuitBreaker
from portal.extensions import db, queue
from tests.portal.conftest import (  # noqa: F401  (fixture)
    ApiClient,
    _test_config,
    sqlite_template,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker]
KIND = "test-agent-health"


def engine_of(agent: AgentProcess, pki) -> AgentEngine:
    return AgentEngine(agent.url, agent.token, pki.ca.cert_path,
                       retry=RetryPolicy(attempts=1), breaker=CircuitBreaker())  # fmt: skip


def request_ids_logged(agent: AgentProcess, path: str) -> list[str]:
    pattern = re.compile(rf" GET {re.escape(path)} \d+ request_id=(\S+)$")
    lines = agent.log_path.read_text().splitlines()
    return [match.group(1) for line in lines if (match := pattern.search(line))]


def wait_for_id(agent: AgentProcess, path: str, request_id: str) -> None:
    """Poll the agent's log (a hang guard: the line is written before the answer leaves)."""
    deadline = time.monotonic() + 10
    while request_id not in request_ids_logged(agent, path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{request_id} not logged:\n{agent.log_path.read_text()[-2000:]}")
        time.sleep(0.05)


def test_engine_sends_the_request_id_of_the_request_being_served(agent_factory, pki):
    own = agent_factory()
    engine = engine_of(own, pki)
    with Flask(__name__).test_request_context("/"):
        g.request_id = "req-from-portal-1"
        engine.list_images()
    with request_id_bound("op-bound-2"):
        engine.facts()
    engine.list_images()  # no request, no operation: the agent makes its own id
    engine.close()

    wait_for_id(own, "/v1/images", "req-from-portal-1")
    wait_for_id(own, "/v1/facts", "op-bound-2")
    made = [i for i in request_ids_logged(own, "/v1/images") if i != "req-from-portal-1"]
    assert len(made) == 1 and re.fullmatch(r"[0-9a-f]{32}", made[0])


@pytest.fixture
def queued_app(tmp_path, sqlite_template) -> Iterator[Flask]:  # noqa: F811
    """The portal with a queue no consumer reads: the test plays the worker."""
    shutil.copy(sqlite_template, tmp_path / "spectr.db")
    config = _test_config(tmp_path, f"sqlite:///{tmp_path / 'spectr.db'}")
    app = create_app({**config, "SPECTR_QUEUE_IMMEDIATE": False})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def agent_health_kind(agent_factory, pki) -> Iterator[AgentProcess]:
    """A creatable operation kind whose handler asks a real agent for its health."""
    own = agent_factory()

    def handler(context: kinds.OperationContext) -> dict:
        engine = engine_of(own, pki)
        try:
            return {"reachable": engine.health().reachable}
        finally:
            engine.close()

    kinds.operation_kind(KIND, creatable=True)(handler)
    yield own
    kinds._KINDS.pop(KIND, None)


def test_operation_run_by_a_worker_sends_the_accepting_request_id(queued_app, agent_health_kind):
    from portal.admin import service as admin

    user = admin.create_user("op", "correct horse battery", "operator")
    _, token = admin.create_token(user, "t", 1)
    api = ApiClient(queued_app.test_client(), token)
    accepted = api.post(
        "/api/v1/operations", json={"kind": KIND}, headers={"X-Request-ID": "accept-77"}
    )
    assert accepted.status_code == 202, accepted.get_json()
    assert accepted.get_json()["request_id"] == "accept-77"

    queue.execute(queue.dequeue())  # the worker's turn, outside any request

    done = api.get(f"/api/v1/operations/{accepted.get_json()['id']}").get_json()
    assert done["state"] == "succeeded", (done["error"], done)
    assert done["result"] == {"reachable": True}
    wait_for_id(agent_health_kind, "/v1/health", "accept-77")
