"""The container relay on the Spectr node: logs follow and exec with streamed output, through
the portal's API and the real Docker engine."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.hosts.service import ensure_local_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]
BUILD_BASE = Path(__file__).parents[1] / "images" / "build-base.sh"


@pytest.fixture(scope="module")
def ticking_container():
    image = subprocess.run(
        [str(BUILD_BASE)], capture_output=True, text=True, check=True
    ).stdout.strip()
    client = docker.from_env()
    container = client.containers.run(
        image,
        ["sh", "-c", "echo hello-from-relay; while true; do echo tick; sleep 0.2; done"],
        name=f"spectr-test-relay-{uuid.uuid4().hex[:6]}",
        detach=True,
    )
    yield container
    container.remove(force=True)
    client.close()


def _events(body: str) -> list[tuple[str, dict]]:
    parsed = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


def test_logs_are_relayed_as_server_sent_events(api_as, ticking_container):
    host = ensure_local_host()
    response = api_as("viewer").get(
        f"/api/v1/hosts/{host.id}/containers/{ticking_container.name}/logs?follow=0&tail=1000"
    )
    assert response.mimetype == "text/event-stream"
    events = _events(response.get_data(as_text=True))
    assert ("line", {"stream": "stdout", "data": "hello-from-relay\n"}) in events
    assert events[-1][0] == "end"


def test_followed_logs_arrive_while_the_container_writes(api_as, ticking_container):
    host = ensure_local_host()
    response = api_as("viewer").get(
        f"/api/v1/hosts/{host.id}/containers/{ticking_container.name}/logs?tail=0",
        buffered=False,
    )
    received = []
    for piece in response.response:
        received.append(piece.decode() if isinstance(piece, bytes) else piece)
        if sum(text.count('"tick\\n"') for text in received) >= 3:
            break
    response.close()
    assert sum(text.count('"tick\\n"') for text in received) >= 3


def test_exec_streams_stdout_stderr_and_the_exit_code(api_as, ticking_container):
    host = ensure_local_host()
    argv = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    response = api_as("operator").post(
        f"/api/v1/hosts/{host.id}/containers/{ticking_container.name}/exec", json={"argv": argv}
    )
    events = _events(response.get_data(as_text=True))
    assert ("stdout", {"data": "out\n"}) in events
    assert ("stderr", {"data": "err\n"}) in events
    assert events[-1] == ("exit", {"exit_code": 3, "timed_out": False})
    audit = db.session.query(AuditEvent).filter_by(action="host.container.exec").one()
    assert audit.details["argv"] == argv


def test_relay_errors_and_roles(api_as, ticking_container):
    host = ensure_local_host()
    viewer, operator = api_as("viewer"), api_as("operator")
    path = f"/api/v1/hosts/{host.id}/containers"
    assert (
        viewer.post(f"{path}/{ticking_container.name}/exec", json={"argv": ["true"]}).status_code
        == 403
    )
    missing = operator.post(f"{path}/no-such-container/exec", json={"argv": ["true"]})
    assert missing.status_code == 404
    assert viewer.get(f"{path}/no-such-container/logs?follow=0").status_code == 404
    empty = operator.post(f"{path}/{ticking_container.name}/exec", json={})
    assert empty.status_code == 422 and "argv" in empty.get_json()["details"]
