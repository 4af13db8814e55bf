"""Logs and exec streaming through a real agent."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.docker]

WAIT_FOR_GO = "while [ ! -f /tmp/go ]; do sleep 0.05; done; echo {marker}; sleep 3600"


def _events(lines):
    for line in lines:
        if line.strip():
            yield json.loads(line)


def _collect(api, path, **kwargs):
    answer = api.request(kwargs.pop("method", "GET"), path, **kwargs)
    assert answer.status_code == 200, answer.text
    return list(_events(answer.text.splitlines()))


def test_logs_return_stdout_and_stderr_separately(api, run_container):
    container = run_container(
        ["sh", "-c", "echo out-1; echo err-1 >&2; sleep 0.3; echo out-2"], "logs"
    )
    container.wait()
    frames = _collect(api, f"/v1/containers/{container.name}/logs")
    assert {"stream": "stdout", "data": "out-1\n"} in frames
    assert {"stream": "stderr", "data": "err-1\n"} in frames
    tail = _collect(api, f"/v1/containers/{container.name}/logs",
                    params={"tail": 1, "stderr": 0, "timestamps": 1})  # fmt: skip
    assert [frame["data"] for frame in tail] == ["out-2\n"]
    assert tail[0]["ts"].endswith("Z")


def test_logs_since_skips_earlier_lines(api, run_container):
    container = run_container(["sh", "-c", "echo early; sleep 2; echo late; sleep 3600"], "since")
    frames = []
    with api.stream("GET", f"/v1/containers/{container.name}/logs",
                    params={"follow": 1, "timestamps": 1}) as answer:  # fmt: skip
        for event in _events(answer.iter_lines()):
            frames.append(event)
            if event["data"] == "late\n":
                break
    late_ts = frames[-1]["ts"]
    since = _collect(api, f"/v1/containers/{container.name}/logs", params={"since": late_ts})
    assert [frame["data"] for frame in since] == ["late\n"]


def test_logs_follow_sees_a_line_written_after_it_started(api, run_container):
    marker = f"marker-{uuid.uuid4().hex}"
    container = run_container(["sh", "-c", WAIT_FOR_GO.format(marker=marker)], "follow")
    with api.stream("GET", f"/v1/containers/{container.name}/logs",
                    params={"follow": 1}) as answer:  # fmt: skip
        assert answer.status_code == 200
        container.exec_run(["touch", "/tmp/go"])
        for event in _events(answer.iter_lines()):
            if marker in event["data"]:
                break
    assert event == {"stream": "stdout", "data": f"{marker}\n"}


def test_logs_follow_ends_when_the_container_stops(api, run_container):
    container = run_container(["sh", "-c", "echo up; sleep 3600"], "ends")
    received = []

    def read():
        with api.stream("GET", f"/v1/containers/{container.name}/logs",
                        params={"follow": 1}) as answer:  # fmt: skip
            received.extend(_events(answer.iter_lines()))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)
    container.stop(timeout=0)
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert received == [{"stream": "stdout", "data": "up\n"}]


def test_client_leaving_closes_the_engine_stream(api, agent, run_container):
    container = run_container(["sh", "-c", "while true; do echo tick; sleep 0.01; done"], "leave")
    baseline = _open_fds(agent.pid)
    for _ in range(5):
        with api.stream("GET", f"/v1/containers/{container.name}/logs",
                        params={"follow": 1}) as answer:  # fmt: skip
            next(answer.iter_lines())
    deadline = time.monotonic() + 20
    while _open_fds(agent.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _open_fds(agent.pid) <= baseline


def _open_fds(pid):
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))


def test_logs_of_a_missing_container_is_404(api):
    answer = api.get("/v1/containers/spectr-test-missing/logs", params={"follow": 1})
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


@pytest.mark.parametrize(("params", "message"), [({"tail": "x"}, "tail"),
                                                 ({"since": "yesterday"}, "since")])  # fmt: skip
def test_logs_bad_parameters_are_400(api, run_container, params, message):
    container = run_container(["sleep", "infinity"], "badlog")
    answer = api.get(f"/v1/containers/{container.name}/logs", params=params)
    assert answer.status_code == 400 and message in answer.json()["message"]


@pytest.fixture()
def sleeper(run_container):
    return run_container(["sleep", "infinity"], "exec")


def test_exec_separates_streams_and_ends_with_the_exit_code(api, sleeper):
    events = _collect(api, f"/v1/containers/{sleeper.name}/exec", method="POST",
                      json={"argv": ["sh", "-c", "echo to-out; echo to-err >&2; exit 7"]})  # fmt: skip
    assert {"stream": "stdout", "data": "to-out\n"} in events
    assert {"stream": "stderr", "data": "to-err\n"} in events
    assert events[-1] == {"exit_code": 7, "timed_out": False}


def test_exec_runs_the_argv_without_a_shell(api, sleeper):
    events = _collect(api, f"/v1/containers/{sleeper.name}/exec", method="POST",
                      json={"argv": ["echo", "$HOME", ";", "id"]})  # fmt: skip
    assert events[0] == {"stream": "stdout", "data": "$HOME ; id\n"}
    assert events[-1]["exit_code"] == 0


def test_exec_honours_user_workdir_and_env(api, sleeper):
    argv = ["sh", "-c", 'echo "$(id -un) $(pwd) $GREETING"']
    events = _collect(api, f"/v1/containers/{sleeper.name}/exec", method="POST",
                      json={"argv": argv, "user": "nobody", "workdir": "/tmp",
                            "env": {"GREETING": "hello"}})  # fmt: skip
    assert events[0]["data"] == "nobody /tmp hello\n"


def test_exec_timeout_reports_and_kills_the_process(api, sleeper):
    events = _collect(api, f"/v1/containers/{sleeper.name}/exec", method="POST",
                      json={"argv": ["sh", "-c", "sleep 321; echo never"], "timeout_s": 0.5})  # fmt: skip
    assert events == [{"exit_code": None, "timed_out": True, "killed": True}]
    processes = sleeper.exec_run(["ps", "-eo", "args"]).output.decode()
    assert "sleep 321" not in processes


def test_exec_missing_binary_reports_the_engine_exit_code(api, sleeper):
    events = _collect(api, f"/v1/containers/{sleeper.name}/exec", method="POST",
                      json={"argv": ["no-such-binary"]})  # fmt: skip
    assert events[-1]["exit_code"] == 126


def test_exec_errors(api, run_container, sleeper):
    stopped = run_container(["true"], "stopped")
    stopped.wait()
    path = "/v1/containers/{}/exec"
    conflict = api.post(path.format(stopped.name), json={"argv": ["true"]})
    assert conflict.status_code == 409
    assert api.post(path.format("spectr-test-none"), json={"argv": ["true"]}).status_code == 404
    for body in ({"argv": "echo hi"}, {"argv": []}, {"argv": ["x"], "timeout_s": 0},
                 {"argv": ["x"], "env": {"A": 1}}):  # fmt: skip
        answer = api.post(path.format(sleeper.name), json=body)
        assert answer.status_code == 422, body


def test_agent_restart_mid_stream_breaks_the_stream_and_a_new_one_works(
    agent_factory, pki, run_container
):
    own = agent_factory()
    container = run_container(["sh", "-c", "while true; do echo tick; sleep 0.05; done"], "restart")
    path = f"/v1/containers/{container.name}/logs"
    with own.http(pki.ca.cert_path) as client:
        with client.stream("GET", path, params={"follow": 1}) as answer:
            lines = answer.iter_lines()
            assert json.loads(next(lines))["data"] == "tick\n"
            own.stop()
            with pytest.raises(httpx.TransportError):
                for _ in lines:
                    pass
        own.start()
        with client.stream("GET", path, params={"follow": 1, "tail": 0}) as answer:
            assert json.loads(next(answer.iter_lines()))["data"] == "tick\n"


def test_container_removed_during_exec_ends_the_stream_with_a_last_line(api, run_container):
    container = run_container(["sleep", "infinity"], "gone")
    # Remove the container once the exec has visibly started (not after a fixed delay: on a
    # loaded machine the exec may not have begun yet, and then there is no stream to end).
    with api.stream("POST", f"/v1/containers/{container.name}/exec",
                    json={"argv": ["sh", "-c", "echo started; sleep 30"]}) as answer:  # fmt: skip
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert json.loads(next(lines))["data"] == "started\n"
        container.remove(force=True)
        events = list(_events(lines))
    last = events[-1]
    # the engine either still knows the exec (exit code of the killed process) or has
    # forgotten it with the container (a not_found error line): never a broken body
    assert last.get("exit_code") == 137 or last["error"]["code"] == "not_found", last


def test_exec_is_killed_when_its_client_leaves(api, sleeper):
    with api.stream("POST", f"/v1/containers/{sleeper.name}/exec",
                    json={"argv": ["sh", "-c", "echo started; sleep 432"]}) as answer:  # fmt: skip
        assert json.loads(next(answer.iter_lines()))["data"] == "started\n"
    # The agent notices when a keepalive write fails: the first write after the client left
    # may still be buffered by TCP, so allow a few keepalive periods on a loaded machine.
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        if "sleep 432" not in sleeper.exec_run(["ps", "-eo", "args"]).output.decode():
            break
        time.sleep(0.2)
    assert "sleep 432" not in sleeper.exec_run(["ps", "-eo", "args"]).output.decode()
