"""Fast tests of the engines package: breaker, retry policy, specs, shapes, error mapping."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import httpx
import pytest

from portal.engines import (
    BadRequest,
    CircuitBreaker,
    Conflict,
    ContainerSpec,
    EngineError,
    GpuRequest,
    NotFound,
    PortBinding,
    RestartPolicy,
    RetryPolicy,
    Unavailable,
    VolumeMount,
)
from portal.engines.agent_transport import _error_from, error_for_code
from portal.engines.docker_shapes import (
    container_from_list,
    gpu_request_from_inspect,
    stats_from_sample,
)
from portal.engines.shapes import container_info

REPO = Path(__file__).resolve().parents[2]


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_agent_imports_nothing_from_portal():
    assert not {name for name in _imports(REPO / "agent") if name.split(".")[0] == "portal"}


def test_engines_do_not_depend_on_flask():
    roots = {name.split(".")[0] for name in _imports(REPO / "portal" / "engines")}
    assert not roots & {"flask", "flask_smorest", "flask_sqlalchemy"}


def test_breaker_opens_after_threshold_and_admits_one_trial():
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=0.05)
    breaker.before_call("h")
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(Unavailable, match="circuit open"):
        breaker.before_call("h")
    time.sleep(0.05)  # the configured rest
    breaker.before_call("h")  # the trial
    with pytest.raises(Unavailable):
        breaker.before_call("h")  # only one trial at a time
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call("h")


def test_success_resets_the_failure_count():
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_retry_delays_are_jittered_below_the_exponential_cap():
    policy = RetryPolicy(attempts=5, base_delay_s=0.1, max_delay_s=0.5)
    for attempt, cap in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= delay <= cap for delay in delays)
        assert len(set(delays)) > 1


def test_spec_to_agent_body_leaves_out_unset_fields():
    spec = ContainerSpec(
        image="img", name="n", ports=[PortBinding(80)], volumes=[VolumeMount("data", "/d")],
        restart_policy=RestartPolicy("always"), gpus=GpuRequest(device_ids=["GPU-1"]),
    )  # fmt: skip
    body = spec.to_agent_body()
    assert body == {
        "image": "img", "name": "n",
        "ports": [{"container_port": 80, "protocol": "tcp", "host_port": None,
                   "host_ip": "127.0.0.1"}],
        "volumes": [{"source": "data", "target": "/d", "read_only": False}],
        "restart_policy": {"name": "always", "maximum_retry_count": 0},
        "gpus": {"device_ids": ["GPU-1"], "driver": "nvidia"},
    }  # fmt: skip


def _response(status: int, body: dict) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (400, "engine_rejected", BadRequest),
        (422, "invalid", BadRequest),
        (401, "unauthorized", EngineError),
        (502, "engine_error", EngineError),
        (502, "engine_unreachable", Unavailable),
    ],
)
def test_agent_errors_map_to_the_tree(status, code, expected):
    error = _error_from(_response(status, {"code": code, "message": "m", "details": {"a": 1}}))
    assert type(error) is expected
    assert error.details == {"a": 1, "agent_status": status, "agent_code": code}


def test_non_json_error_bodies_still_map():
    error = _error_from(httpx.Response(404, text="<html>nope</html>"))
    assert isinstance(error, NotFound) and "nope" in error.message


def test_stream_error_codes_map_to_the_tree():
    assert isinstance(error_for_code("not_found", "m"), NotFound)
    assert type(error_for_code("engine_error", "m")) is EngineError


def test_list_and_agent_shapes_agree():
    entry = {"Id": "abc", "Names": ["/web"], "Image": "img", "ImageID": "sha256:1",
             "State": "running", "Status": "Up", "Labels": {"a": "b"}, "Created": 0,
             "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]}  # fmt: skip
    local = container_from_list(entry)
    agent = container_info({"id": "abc", "name": "web", "image": "img", "image_id": "sha256:1",
                            "state": "running", "status": "Up", "labels": {"a": "b"},
                            "created": None, "ports": [{"container_port": 80, "protocol": "tcp",
                            "host_ip": "127.0.0.1", "host_port": 8080}], "raw": {}})  # fmt: skip
    assert local == agent


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("all", GpuRequest()),
        ("0,GPU-1b", GpuRequest(device_ids=["0", "GPU-1b"])),
        ("none", None),
        (None, None),
    ],
)
def test_gpus_under_the_nvidia_runtime_are_read_from_its_environment(visible, expected):
    # Containers started before device requests (`--runtime nvidia -e NVIDIA_VISIBLE_DEVICES`)
    # ask for GPUs this way; no such runtime is installed here, so the document is written out.
    env = ["PATH=/usr/bin"] + ([f"NVIDIA_VISIBLE_DEVICES={visible}"] if visible else [])
    document = {"HostConfig": {"Runtime": "nvidia"}, "Config": {"Env": env}}
    assert gpu_request_from_inspect(document) == expected
    assert gpu_request_from_inspect({**document, "HostConfig": {"Runtime": "runc"}}) is None


def test_stats_cpu_percent_from_deltas():
    sample = {
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000},
        "memory_stats": {"usage": 5, "limit": 10},
    }  # fmt: skip
    stats = stats_from_sample(sample)
    assert stats.cpu_percent == 40.0 and stats.memory_usage_bytes == 5


def test_error_lines_in_streams_raise_mapped_errors():
    from portal.engines.agent_transport import _event

    assert _event(b'{"stream":"stdout","data":"x"}') == {"stream": "stdout", "data": "x"}
    with pytest.raises(NotFound, match="gone"):
        _event(b'{"error":{"code":"not_found","message":"gone","details":{}}}')


class _ScriptedExecInspect:
    """Stands in for the engine's exec inspect, whose Pid-0 window cannot be timed on demand."""

    def __init__(self, answers: list[dict]) -> None:
        self.answers = answers

    def exec_inspect(self, exec_id: str) -> dict:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _local_engine_with(answers: list[dict]):
    from portal.engines.local import LocalDockerEngine

    engine = LocalDockerEngine.__new__(LocalDockerEngine)  # no Docker client: inspect is scripted
    engine._api = _ScriptedExecInspect(answers)  # type: ignore[assignment]
    return engine


def test_local_exec_kill_waits_for_the_engine_to_record_the_pid():
    import subprocess

    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        running = {"Running": True, "Pid": 0}
        _local_engine_with([running, running, {"Running": True, "Pid": child.pid}])._kill_exec("x")
        assert child.wait(timeout=10) == -9
    finally:
        child.kill()


def test_local_exec_kill_leaves_an_ended_exec_pid_alone():
    import subprocess

    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        _local_engine_with([{"Running": False, "Pid": child.pid}])._kill_exec("x")
        assert child.poll() is None  # the pid may belong to another process by now: untouched
    finally:
        child.kill()
        child.wait()
