"""The ContainerEngine contract on both of Spectr's engines, run on the real Docker engine: the
suite anyone can run against their own engine (portal/engines/contract_suite.py), then what
needs Docker itself beside the engine (a registry, credentials, GPUs, TTYs)."""

from __future__ import annotations

import time
import uuid

import pytest

from portal.engines import (
    ContainerSpec,
    EngineError,
    ExecChunk,
    GpuRequest,
    LogChunk,
    NotFound,
    PortBinding,
    RestartPolicy,
    VolumeMount,
)
from portal.engines.contract_suite import ContainerEngineContract

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


class TestSpectrEngines(ContainerEngineContract):
    """The product's suite, once per engine (the `engine` and `image` fixtures of conftest.py)."""
