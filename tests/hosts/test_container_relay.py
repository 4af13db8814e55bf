"""The container relay on the Spectr node: logs follow and exec with streamed output, through
the portal's API and the real Docker engine."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid

import docker
import pytest

from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.hosts.service import ensure_local_host
from tests.hosts.conftest import BUILD_BASE

pytestmark = [pytest.mark.slow, pytest.mark.docker]


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


def _texts(events: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """(stream, data) of the line events, without their timestamps."""
    return [(data["stream"], data["data"]) for kind, data in events if kind == "line"]


def test_logs_are_relayed_as_server_sent_events(api_as, ticking_container):
    host = ensure_local_host()
    response = api_as("viewer").get(
        f"/api/v1/hosts/{host.id}/containers/{ticking_container.name}/logs?follow=0&tail=1000"
    )
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)
    events = _events(body)
    assert ("stdout", "hello-from-relay\n") in _texts(events)
    first = next(data for kind, data in events if kind == "line")
    assert f"id: {first['ts']}\nevent: line" in body  # the timestamp is the event's id
    assert events[-1] == ("end", {"reason": "done", "message": "The log was read to its end.",
                                  "container": ticking_container.name})  # fmt: skip


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


def _read_until(response, done, timeout: float) -> str:
    """Read a streamed response until done(text so far) or the time is up; close it."""
    text, deadline = "", time.monotonic() + timeout
    for piece in response.response:
        text += piece.decode() if isinstance(piece, bytes) else piece
        if done(text) or time.monotonic() > deadline:
            break
    response.close()
    return text


def test_a_quiet_followed_log_stays_open_past_the_read_timeout(app, api_as, run_container):
    # Heartbeats every 0.3 s; every engine read gives up after 1 s and is opened again.
    app.config.update(SPECTR_SSE_HEARTBEAT_SECONDS=0.3, SPECTR_LOG_READ_TIMEOUT_SECONDS=1.0)
    quiet = run_container("echo before; sleep 4; echo after-silence; sleep 3600")
    host = ensure_local_host()

    started = time.monotonic()
    response = api_as("viewer").get(
        f"/api/v1/hosts/{host.id}/containers/{quiet.name}/logs?tail=10", buffered=False
    )
    body = _read_until(response, lambda text: "after-silence" in text, timeout=30)

    assert time.monotonic() - started >= 3  # it lived through several read timeouts
    events = _events(body)
    assert _texts(events) == [("stdout", "before\n"), ("stdout", "after-silence\n")]
    assert body.count(": heartbeat\n\n") >= 6
    assert not [kind for kind, _ in events if kind != "line"]  # no end, no error


def test_a_reader_that_leaves_a_quiet_log_leaves_no_reader_behind(app, api_as, run_container):
    app.config.update(SPECTR_SSE_HEARTBEAT_SECONDS=0.2, SPECTR_LOG_READ_TIMEOUT_SECONDS=1.0)
    quiet = run_container("sleep 3600")
    host = ensure_local_host()
    before = _pumps()

    response = api_as("viewer").get(
        f"/api/v1/hosts/{host.id}/containers/{quiet.name}/logs", buffered=False
    )
    assert ": heartbeat" in _read_until(response, lambda text: text.count("heartbeat") >= 2, 10)

    # it stops at the engine's next read timeout instead of opening the log again
    deadline = time.monotonic() + 10
    while _pumps() > before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pumps() == before


def _pumps() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "sse-pump")


def test_a_reconnection_goes_on_after_the_last_line_it_saw(app, api_as, run_container):
    script = "for i in 1 2 3 4 5; do echo line-$i; done; sleep 3600"
    numbered = run_container(script)
    host = ensure_local_host()
    viewer = api_as("viewer")
    path = f"/api/v1/hosts/{host.id}/containers/{numbered.name}/logs"
    deadline = time.monotonic() + 20
    lines = []
    while len(lines) < 5 and time.monotonic() < deadline:
        lines = [d for k, d in _events(viewer.get(f"{path}?follow=0").get_data(as_text=True))
                 if k == "line"]  # fmt: skip
    second, fourth = lines[1]["ts"], lines[3]["ts"]

    resumed = viewer.get(f"{path}?follow=0&tail=1", headers={"Last-Event-ID": second})
    assert [d for _, d in _texts(_events(resumed.get_data(as_text=True)))] == [
        "line-3\n", "line-4\n", "line-5\n"]  # fmt: skip
    # since= does the same for a page that starts a new stream; the later of the two wins
    later = viewer.get(f"{path}?follow=0&since={fourth}", headers={"Last-Event-ID": second})
    assert _texts(_events(later.get_data(as_text=True))) == [("stdout", "line-5\n")]
    followed = viewer.get(f"{path}?since={fourth}", buffered=False)
    body = _read_until(followed, lambda text: "line-5" in text, timeout=10)
    assert _texts(_events(body)) == [("stdout", "line-5\n")]

    bad = viewer.get(f"{path}?follow=0&since=yesterday")
    assert bad.status_code == 422 and "since" in bad.get_json()["details"]
    bad_header = viewer.get(f"{path}?follow=0", headers={"Last-Event-ID": "x"})
    assert bad_header.status_code == 422 and "Last-Event-ID" in bad_header.get_json()["details"]


def test_a_followed_log_says_why_it_ended(api_as, run_container):
    host = ensure_local_host()
    viewer = api_as("viewer")
    path = f"/api/v1/hosts/{host.id}/containers"
    stopping = run_container("echo bye; sleep 1; exit 3")
    body = viewer.get(f"{path}/{stopping.name}/logs").get_data(as_text=True)
    events = _events(body)
    assert _texts(events) == [("stdout", "bye\n")]
    kind, end = events[-1]
    assert kind == "end" and (end["reason"], end["state"], end["exit_code"]) == (
        "stopped", "exited", 3)  # fmt: skip
    assert end["message"] == "The container stopped (exit code 3)."
    never_started = run_container("echo never", start=False)
    kind, end = _events(viewer.get(f"{path}/{never_started.name}/logs").get_data(as_text=True))[-1]
    assert kind == "end" and (end["reason"], end["state"], end["exit_code"]) == (
        "stopped", "created", None)  # fmt: skip
    assert end["message"] == "The container has not been started."

    removed = run_container("echo here; sleep 3600")
    response = viewer.get(f"{path}/{removed.name}/logs", buffered=False)
    pieces = iter(response.response)
    while "here" not in next(pieces).decode():
        pass
    removed.remove(force=True)
    rest = "".join(piece.decode() for piece in pieces)
    assert _events(rest)[-1] == ("end", {"reason": "removed", "container": removed.name,
                                         "message": "The container was removed."})  # fmt: skip


def _wait_for_lines(viewer, path: str, count: int) -> list[dict]:
    deadline, lines = time.monotonic() + 20, []
    while len(lines) < count and time.monotonic() < deadline:
        body = viewer.get(f"{path}?follow=0&tail=all").get_data(as_text=True)
        lines = [data for kind, data in _events(body) if kind == "line"]
    return lines


def test_logs_download_as_a_log_file_with_or_without_timestamps(api_as, run_container):
    script = "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; sleep 3600"
    writer = run_container(script)
    host = ensure_local_host()
    viewer = api_as("viewer")
    path = f"/api/v1/hosts/{host.id}/containers/{writer.name}/logs"
    lines = _wait_for_lines(viewer, path, 6)

    whole = viewer.get(f"{path}?download=1&tail=all")
    assert whole.status_code == 200 and whole.mimetype == "text/plain"
    disposition = whole.headers["Content-Disposition"]
    assert re.fullmatch(rf'attachment; filename="{writer.name}-\d{{8}}T\d{{6}}Z\.log"', disposition)
    # Both streams, in the engine's order, which is the API's. (The engine stamps stdout and
    # stderr as it reads each pipe: under load the stderr line may come before stdout lines
    # written first, so only each stream's own order is the container's.)
    text = whole.get_data(as_text=True)
    assert text == "".join(line["data"] for line in lines)
    assert [line for line in text.splitlines() if line != "oops"] == [
        f"line-{i}" for i in range(1, 6)
    ]
    assert text.splitlines().count("oops") == 1

    last = viewer.get(f"{path}?download=1&tail=2&timestamps=1").get_data(as_text=True)
    assert last == "".join(f"{line['ts']} {line['data']}" for line in lines[-2:])

    bad = viewer.get(f"{path}?download=1&tail=lots")
    assert bad.status_code == 422 and "tail" in bad.get_json()["details"]
    missing = viewer.get(f"/api/v1/hosts/{host.id}/containers/no-such-container/logs?download=1")
    assert missing.status_code == 404
    # reading is not a change: nothing is audited
    assert db.session.query(AuditEvent).filter(AuditEvent.action.like("%log%")).count() == 0


def test_the_tail_can_be_every_line(api_as, run_container):
    writer = run_container("seq 1 1500; sleep 3600")
    host = ensure_local_host()
    viewer = api_as("viewer")
    path = f"/api/v1/hosts/{host.id}/containers/{writer.name}/logs"
    assert len(_wait_for_lines(viewer, path, 1500)) == 1500
    body = viewer.get(f"{path}?follow=0&tail=1000").get_data(as_text=True)
    assert _texts(_events(body))[0] == ("stdout", "501\n")
    assert viewer.get(f"{path}?follow=0&tail=-1").status_code == 422
