"""One contract suite for every ContainerEngine, run on the real Docker engine."""

from __future__ import annotations

import time
import uuid

import pytest

from portal.engines import (
    BadRequest,
    Conflict,
    ContainerSpec,
    EngineError,
    ExecChunk,
    ExecExit,
    GpuRequest,
    LogChunk,
    NotFound,
    PortBinding,
    RestartPolicy,
    Unavailable,
    VolumeMount,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker]

TICKER = ["sh", "-c", "while true; do echo tick; sleep 0.01; done"]


def _spec(image, name, **fields):
    return ContainerSpec(image=image, name=name, command=["sleep", "infinity"], **fields)


def test_health_and_facts(engine, docker_client):
    health = engine.health()
    assert health.reachable and health.engine_version == docker_client.version()["Version"]
    facts = engine.facts()
    assert set(facts) >= {"hostname", "os", "kernel", "cpu", "memory", "disks", "docker", "gpus"}
    assert facts["cpu"]["logical"] >= 1 and facts["memory"]["total_mb"] > 0
    assert facts["kernel"]["release"] and facts["os"]["pretty_name"]
    assert facts["docker"]["engine_version"] == docker_client.version()["Version"]
    assert facts["docker"]["api_version"] == docker_client.version()["ApiVersion"]
    assert facts["disks"] and {"mount", "size_mb", "free_mb"} <= facts["disks"][0].keys()


def test_list_and_inspect_images(engine, image):
    assert any(image in info.tags for info in engine.list_images())
    info = engine.inspect_image(image)
    assert image in info.tags and info.id.startswith("sha256:")
    with pytest.raises(NotFound):
        engine.inspect_image("spectr-test-no-such:image")


def test_pull_reports_progress_and_remove(engine, registry):
    reference = registry.push_tiny_image("spectr-test/contract", uuid.uuid4().hex[:8])
    events = []
    info = engine.pull_image(reference, progress=events.append)
    assert reference in info.tags
    assert events and all(event.status for event in events)
    engine.remove_image(reference)
    with pytest.raises(NotFound):
        engine.inspect_image(reference)
    with pytest.raises(NotFound):
        engine.pull_image(f"{registry.address}/spectr-test/contract:missing")


def test_pull_with_registry_credentials(engine, auth_registry, docker_client):
    from agent.tests.registry_seed import push_tiny_image

    tag = uuid.uuid4().hex[:8]
    with auth_registry.http() as client:
        push_tiny_image(client, "spectr-test/private", tag, b"private\n")
    reference = f"{auth_registry.address}/spectr-test/private:{tag}"
    with pytest.raises(EngineError):
        engine.pull_image(reference)  # no credentials: the registry says 401
    auth = {"username": auth_registry.user, "password": auth_registry.password,
            "serveraddress": auth_registry.address}  # fmt: skip
    try:
        assert reference in engine.pull_image(reference, auth=auth).tags
    finally:
        docker_client.images.remove(reference, force=True)


def test_create_with_spec_then_inspect(engine, image, container_names, docker_client, tmp_path):
    name = container_names("contract")
    spec = _spec(image, name, env={"K": "v"}, labels={"spectr.test": name},
                 ports=[PortBinding(9000)], volumes=[VolumeMount(str(tmp_path), "/data", True)],
                 restart_policy=RestartPolicy("unless-stopped"), cpus=0.25,
                 memory_bytes=32 * 1024 * 1024, working_dir="/tmp")  # fmt: skip
    info = engine.create_container(spec)
    assert info.name == name and info.state == "running" and info.labels == {"spectr.test": name}
    assert info.ports[0].container_port == 9000 and info.ports[0].host_ip == "127.0.0.1"
    assert info.ports[0].host_port
    host = docker_client.containers.get(name).attrs["HostConfig"]
    assert host["RestartPolicy"]["Name"] == "unless-stopped" and host["NanoCpus"] == 250_000_000
    assert host["Mounts"][0]["ReadOnly"] is True


def test_gpu_request_reaches_the_engine(engine, image, container_names, docker_client):
    # No GPU here: create without starting and read the request back from the engine.
    name = container_names("gpu")
    engine.create_container(_spec(image, name, gpus=GpuRequest(count=1)), start=False)
    request = docker_client.containers.get(name).attrs["HostConfig"]["DeviceRequests"][0]
    assert request["Count"] == 1 and request["Capabilities"] == [["gpu"]]


def test_lifecycle_and_label_listing(engine, image, container_names):
    name, other = container_names("life"), container_names("life")
    label = {"spectr.test": name}
    created = engine.create_container(_spec(image, name, labels=label), start=False)
    engine.create_container(_spec(image, other, labels={"spectr.test": other}))
    assert created.state == "created"
    assert [c.name for c in engine.list_containers(label)] == [name]
    assert engine.list_containers(label, include_stopped=False) == []
    assert [c.name for c in engine.list_containers({"spectr.test": None}) if c.name == name]
    engine.start_container(name)
    assert engine.inspect_container(name).state == "running"
    engine.restart_container(name, timeout=0)
    assert engine.inspect_container(name).restart_count == 0
    engine.stop_container(name, timeout=0)
    stopped = engine.inspect_container(name)
    assert stopped.state == "exited" and stopped.exit_code == 137
    engine.remove_container(name)
    with pytest.raises(NotFound):
        engine.inspect_container(name)


def test_errors_map_to_the_exception_tree(engine, image, container_names):
    name = container_names("errors")
    engine.create_container(_spec(image, name))
    with pytest.raises(Conflict):
        engine.create_container(_spec(image, name))
    with pytest.raises(Conflict):
        engine.remove_container(name)
    with pytest.raises(NotFound):
        engine.create_container(_spec("spectr-test-no-such-image:1", None))
    with pytest.raises(NotFound):
        engine.stop_container("spectr-test-missing")
    with pytest.raises(BadRequest):
        engine.create_container(_spec(image, container_names("bad"), memory_bytes=1024))
    engine.remove_container(name, force=True, volumes=True)


def test_stats(engine, image, container_names):
    name = container_names("stats")
    engine.create_container(_spec(image, name))
    stats = engine.container_stats(name)
    assert stats.memory_usage_bytes and stats.memory_usage_bytes > 0 and stats.cpu_percent >= 0


def test_logs_follow_and_close_early(engine, image, container_names):
    name = container_names("logs")
    engine.create_container(ContainerSpec(image=image, name=name, command=TICKER))
    stream = engine.logs(name, follow=True, timestamps=True)
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert all(c.stream == "stdout" and c.data == "tick\n" and c.ts for c in first)
    tail = list(engine.logs(name, tail=2))
    assert tail == [LogChunk("stdout", "tick\n")] * 2
    with pytest.raises(NotFound):
        engine.logs("spectr-test-missing")


def test_logs_follow_ends_with_the_container(engine, image, container_names):
    name = container_names("short")
    script = "echo one; echo two >&2; sleep 1"
    engine.create_container(ContainerSpec(image=image, name=name, command=["sh", "-c", script]))
    chunks = list(engine.logs(name, follow=True))
    assert LogChunk("stdout", "one\n") in chunks and LogChunk("stderr", "two\n") in chunks


def test_exec(engine, image, container_names):
    name = container_names("exec")
    engine.create_container(_spec(image, name))
    result = engine.exec_run(name, ["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert (result.exit_code, result.stdout, result.stderr) == (5, "out\n", "err\n")
    env_result = engine.exec_run(name, ["sh", "-c", 'echo "$A $(pwd) $(id -un)"'],
                                 user="nobody", workdir="/tmp", env={"A": "x"})  # fmt: skip
    assert env_result.stdout == "x /tmp nobody\n"
    events = list(engine.exec_stream(name, ["echo", "$NOT;", "expanded"]))
    assert events == [ExecChunk("stdout", "$NOT; expanded\n"), ExecExit(0)]
    timed_out = engine.exec_run(name, ["sleep", "30"], timeout=0.5)
    assert timed_out.timed_out and timed_out.exit_code is None
    engine.stop_container(name, timeout=0)
    with pytest.raises(Conflict):
        engine.exec_run(name, ["true"])
    with pytest.raises(NotFound):
        engine.exec_run("spectr-test-missing", ["true"])


def test_logs_of_a_tty_container(engine, image, docker_client, container_names):
    # The engine API has no tty field in specs; a tty container is made directly.
    name = container_names("tty")
    docker_client.containers.run(image, ["sh", "-c", "echo with-tty; sleep 3600"], name=name,
                                 tty=True, detach=True)  # fmt: skip
    stream = engine.logs(name, follow=True)
    first = next(stream)
    stream.close()
    assert first == LogChunk("stdout", "with-tty\r\n")
    assert engine.inspect_container(name).tty is True


def test_closing_an_exec_stream_early_kills_the_process(
    engine, image, container_names, docker_client
):
    name = container_names("execclose")
    engine.create_container(_spec(image, name))
    stream = engine.exec_stream(name, ["sh", "-c", "echo started; sleep 433"])
    assert next(stream) == ExecChunk("stdout", "started\n")
    stream.close()
    container = docker_client.containers.get(name)
    deadline = time.monotonic() + 30  # the agent notices at its next keepalive at the latest
    while time.monotonic() < deadline and "sleep 433" in _processes(container):
        time.sleep(0.2)
    assert "sleep 433" not in _processes(container)


def _processes(container) -> str:
    return container.exec_run(["ps", "-eo", "args"]).output.decode()


def test_a_quiet_followed_log_gives_up_after_its_read_timeout(engine, image, container_names):
    # Followers resume from the last line on Unavailable; any other error ended their stream.
    name = container_names("quiet")
    engine.create_container(ContainerSpec(image=image, name=name, command=["sleep", "3600"]))
    started = time.monotonic()
    with pytest.raises(Unavailable):
        list(engine.logs(name, follow=True, read_timeout_s=1.0))
    assert 0.9 <= time.monotonic() - started < 10
