"""Fast tests of the agent's parsing, validation, config and auth pieces (no Docker)."""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys

import pytest

from agent.auth import FailureBackoff, TokenVerifier, hash_token
from agent.config import ConfigError, add_arguments, load_config
from agent.docker_api import FrameDecoder, _ChunkedDecoder
from agent.errors import ApiError
from agent.facts import parse_nvidia_smi_csv
from agent.images import split_reference
from agent.specs import container_create_body


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture()
def tls_files(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    return str(cert), str(key)


def test_config_file_then_env_then_flags(tmp_path, tls_files):
    path = tmp_path / "agent.json"
    document = {"listen_host": "127.0.0.1", "listen_port": 8443, "tls_cert": tls_files[0],
                "tls_key": tls_files[1], "token_sha256": "A" * 64}  # fmt: skip
    path.write_text(json.dumps(document))
    config = load_config(_args("--config", str(path), "--listen-port", "9443"),
                         {"SPECTR_AGENT_LISTEN_HOST": "127.0.0.2"})  # fmt: skip
    assert (config.listen_host, config.listen_port) == ("127.0.0.2", 9443)
    assert config.token_sha256 == "a" * 64
    assert config.client_ca is None
    assert (config.request_head_timeout_s, config.max_unauthenticated_per_client) == (10.0, 16)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"token_sha256": "abc"}, "token_sha256"),
        ({"tls_cert": "/nonexistent"}, "tls_cert"),
        ({"client_ca": "/nonexistent"}, "client_ca"),
        ({"previous_token_sha256": "xyz"}, "previous_token_sha256 must be the hex SHA-256"),
        ({"listen_port": "http"}, "listen_port"),
        ({"token": "plain"}, "unknown config keys: token"),
        ({"max_connections": 0}, "max_connections must be positive"),
        ({"max_unauthenticated_per_client": "-1"}, "max_unauthenticated_per_client"),
        ({"request_head_timeout_s": "soon"}, "request_head_timeout_s must be a number"),
        ({"tls_handshake_timeout_s": 0}, "tls_handshake_timeout_s must be positive"),
    ],
)
def test_config_rejects_bad_values(tmp_path, tls_files, document, message):
    base = {"tls_cert": tls_files[0], "tls_key": tls_files[1], "token_sha256": "b" * 64}
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({**base, **document}))
    with pytest.raises(ConfigError, match=message):
        load_config(_args("--config", str(path)), {})


def test_cli_exits_2_with_a_clear_message_on_bad_config(tmp_path):
    result = subprocess.run([sys.executable, "-m", "agent", "--token-sha256", "x"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert "tls_cert must name a readable file" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_hashes_a_token_from_stdin():
    result = subprocess.run([sys.executable, "-m", "agent", "--hash-token"], input="s3cret\n",
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout.strip() == hash_token("s3cret")


def test_token_verifier_accepts_only_the_right_bearer_token():
    verifier = TokenVerifier(hash_token("right"))
    assert verifier.verify("Bearer right")
    assert verifier.verify("bearer right")
    assert not verifier.verify("Bearer wrong")
    assert not verifier.verify("Basic right")
    assert not verifier.verify(None)
    assert not verifier.verify("Bearer ")


def test_token_verifier_accepts_a_previous_token_only_while_it_is_configured():
    during = TokenVerifier(hash_token("new"), hash_token("old"))
    after = TokenVerifier(hash_token("new"), "")
    assert during.verify("Bearer new") and during.verify("Bearer old")
    assert after.verify("Bearer new") and not after.verify("Bearer old")
    assert not during.verify("Bearer other")


def test_backoff_locks_out_after_free_failures_and_success_forgets():
    backoff = FailureBackoff(free_failures=3, base_lockout_s=60)
    for _ in range(2):
        backoff.record_failure("10.0.0.1")
    assert backoff.retry_after("10.0.0.1") == 0
    backoff.record_failure("10.0.0.1")
    assert backoff.retry_after("10.0.0.1") > 0
    assert backoff.retry_after("10.0.0.2") == 0
    backoff.record_success("10.0.0.1")
    assert backoff.retry_after("10.0.0.1") == 0


def test_backoff_forgets_the_oldest_clients_beyond_its_cap():
    backoff = FailureBackoff(free_failures=1, base_lockout_s=60, max_clients=2)
    for client in ("a", "b", "c"):
        backoff.record_failure(client)
    assert backoff.retry_after("a") == 0
    assert backoff.retry_after("c") > 0


def test_chunked_decoder_handles_split_input():
    raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    decoder = _ChunkedDecoder()
    body = b"".join(decoder.feed(raw[i : i + 3]) for i in range(0, len(raw), 3))
    assert body == b"hello world"
    assert decoder.done


def test_frame_decoder_separates_streams_across_partial_frames():
    frames = struct.pack(">BxxxL", 1, 4) + b"out\n" + struct.pack(">BxxxL", 2, 4) + b"err\n"
    decoder = FrameDecoder()
    assert decoder.feed(frames[:10]) == []
    assert decoder.feed(frames[10:]) == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert FrameDecoder(tty=True).feed(b"raw") == [("stdout", b"raw")]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:1.36", ("busybox", "1.36")),
        ("127.0.0.1:5000/team/app", ("127.0.0.1:5000/team/app", "latest")),
        ("127.0.0.1:5000/team/app:v2", ("127.0.0.1:5000/team/app", "v2")),
        ("app@sha256:abc", ("app", "sha256:abc")),
    ],
)
def test_split_reference(reference, expected):
    assert split_reference(reference) == expected


def test_spec_maps_every_field_to_the_engine_body():
    name, body = container_create_body({
        "image": "img", "name": "web-1", "command": ["serve", "--port", "80"],
        "env": {"A": "1"}, "labels": {"spectr.app": "web"},
        "ports": [{"container_port": 80}, {"container_port": 53, "protocol": "udp",
                                           "host_port": 5353, "host_ip": "0.0.0.0"}],
        "volumes": [{"source": "/srv/data", "target": "/data", "read_only": True},
                    {"source": "cache", "target": "/cache"}],
        "restart_policy": {"name": "on-failure", "maximum_retry_count": 3},
        "cpus": 1.5, "memory_bytes": 64 * 1024 * 1024, "gpus": {"count": 2},
    })  # fmt: skip
    host = body["HostConfig"]
    assert name == "web-1"
    assert body["Cmd"] == ["serve", "--port", "80"] and body["Env"] == ["A=1"]
    assert host["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert host["PortBindings"]["53/udp"] == [{"HostIp": "0.0.0.0", "HostPort": "5353"}]
    assert [m["Type"] for m in host["Mounts"]] == ["bind", "volume"]
    assert host["Mounts"][0]["ReadOnly"] is True
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["NanoCpus"] == 1_500_000_000 and host["Memory"] == 64 * 1024 * 1024
    assert host["DeviceRequests"][0]["Count"] == 2
    assert host["DeviceRequests"][0]["Capabilities"] == [["gpu"]]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "image"),
        ({"image": "i", "command": "echo hi"}, "command"),
        ({"image": "i", "ports": [{"container_port": 70000}]}, "ports[0]"),
        ({"image": "i", "volumes": [{"source": "/a", "target": "rel"}]}, "volumes[0]"),
        ({"image": "i", "restart_policy": "sometimes"}, "restart_policy"),
        ({"image": "i", "memory_bytes": 10}, "memory_bytes"),
        ({"image": "i", "cpus": -1}, "cpus"),
        ({"image": "i", "gpus": {"count": 0}}, "gpus"),
        ({"image": "i", "name": "bad name"}, "name"),
        ({"image": "i", "env": {"A": 1}}, "env"),
    ],
)
def test_spec_errors_name_the_field(spec, field):
    with pytest.raises(ApiError) as caught:
        container_create_body(spec)
    assert caught.value.status == 422
    assert caught.value.details["field"] == field


def test_spec_rejects_unknown_fields():
    with pytest.raises(ApiError, match="unknown spec fields: privileged"):
        container_create_body({"image": "i", "privileged": True})


def test_nvidia_smi_csv_parsing():
    # Canned nvidia-smi output: there is no GPU on this machine.
    output = (
        "0, GPU-1111, NVIDIA H100 80GB HBM3, 81559, 1024, 550.54.15\n"
        "1, GPU-2222, NVIDIA H100 80GB HBM3, 81559, [N/A], 550.54.15\n"
    )
    gpus = parse_nvidia_smi_csv(output, "12.4")
    assert gpus[0] == {"index": 0, "uuid": "GPU-1111", "name": "NVIDIA H100 80GB HBM3",
                       "memory_total_mb": 81559, "memory_used_mb": 1024,
                       "driver_version": "550.54.15", "cuda_version": "12.4"}  # fmt: skip
    assert gpus[1]["memory_used_mb"] is None


def test_gpu_telemetry_csv_parsing():
    # Canned nvidia-smi telemetry of an H100 (no GPU on this machine); an idle MIG slice
    # answers [N/A] for power.
    from agent.facts import parse_gpu_telemetry_csv

    output = (
        "0, GPU-1111, NVIDIA H100 80GB HBM3, 81559, 40960, 97, 71, 688.12\n"
        "1, GPU-2222, NVIDIA H100 80GB HBM3, 81559, 0, 0, 33, [N/A]\n"
    )
    first, second = parse_gpu_telemetry_csv(output)
    assert first == {"index": 0, "uuid": "GPU-1111", "name": "NVIDIA H100 80GB HBM3",
                     "memory_total_mb": 81559, "memory_used_mb": 40960,
                     "utilization_percent": 97.0, "temperature_celsius": 71.0,
                     "power_watts": 688.12}  # fmt: skip
    assert second["power_watts"] is None and second["utilization_percent"] == 0.0


def test_cgroup_reader_understands_v1_and_v2_layouts(tmp_path, monkeypatch):
    from agent import cgroups

    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    v1 = {"cpuacct/docker/aaa/cpuacct.usage": "2500000000\n",
          "memory/docker/aaa/memory.usage_in_bytes": "4096\n"}  # fmt: skip
    v2 = {"system.slice/docker-bbb.scope/cpu.stat": "usage_usec 1500000\nuser_usec 1\n",
          "system.slice/docker-bbb.scope/memory.current": "8192\n"}  # fmt: skip
    for relative, text in {**v1, **v2}.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert (cgroups.cpu_seconds("aaa"), cgroups.memory_bytes("aaa")) == (2.5, 4096)
    assert (cgroups.cpu_seconds("bbb"), cgroups.memory_bytes("bbb")) == (1.5, 8192)
    assert (cgroups.cpu_seconds("ccc"), cgroups.memory_bytes("ccc")) == (None, None)


@pytest.mark.parametrize("timestamps", [False, True])
def test_log_lines_are_valid_json_for_any_text(timestamps):
    from agent.streams import log_line

    text = 'quote " backslash \\ tab \t nul \x00 unicode é ✓\n'
    stamp = "2026-11-28T21:00:00.123456789Z"
    payload = (f"{stamp} " if timestamps else "").encode() + text.encode() + b"\xff"
    line = log_line("stderr", payload, timestamps)
    assert line.endswith("\n") and line.count("\n") == 1
    document = json.loads(line)
    assert document["stream"] == "stderr"
    assert document["data"] == text + "\ufffd"  # invalid UTF-8 is replaced, not dropped
    assert document.get("ts") == (stamp if timestamps else None)


class _ScriptedInspect:
    """Stands in for the engine's exec inspect, whose Pid-0 window cannot be timed on demand."""

    def __init__(self, answers: list[dict]) -> None:
        self.answers = answers

    def request(self, method: str, path: str) -> dict:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_exec_kill_waits_for_the_engine_to_record_the_pid():
    from agent.streams import StreamRoutes

    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        running = {"Running": True, "Pid": 0}
        routes = StreamRoutes(
            _ScriptedInspect([running, running, {"Running": True, "Pid": child.pid}])
        )  # type: ignore[arg-type]
        assert routes._kill("exec-id") is True
        assert child.wait(timeout=10) == -9
    finally:
        child.kill()


def test_exec_kill_leaves_an_ended_exec_pid_alone():
    from agent.streams import StreamRoutes

    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        routes = StreamRoutes(_ScriptedInspect([{"Running": False, "Pid": child.pid}]))  # type: ignore[arg-type]
        assert routes._kill("exec-id") is False
        assert child.poll() is None  # the pid may belong to another process by now: untouched
    finally:
        child.kill()
        child.wait()


class _EngineWithoutSample:
    """An engine that answers a stats call with no sample, as Docker does for a container being
    removed (a race the fuzz test met on the shared engine), then reports the container's state."""

    def __init__(self, running: bool) -> None:
        self.running = running

    def request(self, method: str, path: str, *args: object, **kwargs: object) -> object:
        if path.endswith("/stats"):
            return None
        return {"State": {"Running": self.running}}


@pytest.mark.parametrize(("running", "status"), [(False, 409), (True, 502)])
def test_stats_without_a_sample_is_a_conflict_unless_the_container_runs(running, status):
    from agent.containers import ContainerRoutes
    from agent.docker_api import DockerError
    from agent.web import Request

    routes = ContainerRoutes(_EngineWithoutSample(running))  # type: ignore[arg-type]
    request = Request("GET", "/v1/containers/abc/stats", {}, b"", None, {"id": "abc"})  # type: ignore[arg-type]
    with pytest.raises(DockerError) as raised:
        routes.stats(request)
    assert raised.value.status == status


class _EngineCountingDiskUsage:
    """An engine whose volume list the test changes, counting GET /system/df (seconds of work
    on a busy engine: it sums every image and container too)."""

    def __init__(self) -> None:
        self.volumes = ["a"]
        self.disk_usage_calls = 0

    def request(self, method: str, path: str, *args: object, **kwargs: object) -> object:
        if path == "/volumes":
            return {"Volumes": [{"Name": name} for name in self.volumes]}
        self.disk_usage_calls += 1
        return {"Volumes": [{"Name": n, "UsageData": {"Size": 7}} for n in self.volumes]}


def test_volume_sizes_are_measured_once_until_a_volume_is_new():
    from agent.volumes import VolumeRoutes
    from agent.web import Request

    engine = _EngineCountingDiskUsage()
    routes = VolumeRoutes(engine)  # type: ignore[arg-type]
    listing = Request("GET", "/v1/volumes", {}, b"", None)  # type: ignore[arg-type]
    assert [v["size"] for v in routes.list(listing)[1]] == [7]
    assert [v["size"] for v in routes.list(listing)[1]] == [7]
    assert engine.disk_usage_calls == 1
    engine.volumes.append("b")
    assert [v["size"] for v in routes.list(listing)[1]] == [7, 7]
    assert engine.disk_usage_calls == 2
    without_sizes = Request("GET", "/v1/volumes", {"size": ["0"]}, b"", None)  # type: ignore[arg-type]
    assert [v["size"] for v in routes.list(without_sizes)[1]] == [None, None]
    assert engine.disk_usage_calls == 2
