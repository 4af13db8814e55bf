"""Image, health, facts, OpenAPI and metrics endpoints of a real agent."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from urllib.parse import quote

import pytest

from agent.config import AgentConfig
from agent.server import AgentApp

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _lines(answer):
    return [json.loads(line) for line in answer.text.splitlines() if line.strip()]


def test_health_reports_agent_and_engine(api, docker_client):
    body = api.get("/v1/health").json()
    assert body["status"] == "ok" and body["agent_version"]
    assert body["engine"]["version"] == docker_client.version()["Version"]


def test_every_answer_names_the_contract_it_serves(api):
    from agent import CONTRACT

    health = api.get("/v1/health")
    assert health.json()["contract"] == CONTRACT == health.headers["Spectr-Agent-Contract"]
    refused = api.get("/v1/containers/spectr-test-no-such-container")  # errors name it too
    assert refused.status_code == 404 and refused.headers["Spectr-Agent-Contract"] == CONTRACT
    spec = api.get("/v1/openapi.json").json()
    assert spec["info"]["x-spectr-contract"] == CONTRACT


def test_facts_report_the_host(api, docker_client):
    facts = api.get("/v1/facts").json()
    assert facts["cpu"]["logical"] == os.cpu_count()
    assert facts["memory"]["total_mb"] > facts["memory"]["available_mb"] > 0
    assert any(disk["mount"] == "/" and disk["size_mb"] > 0 for disk in facts["disks"])
    assert facts["docker"]["engine_version"] == docker_client.version()["Version"]
    assert facts["kernel"] == {"release": os.uname().release, "architecture": os.uname().machine}
    assert facts["gpus"] == []  # no nvidia-smi on this machine


def test_facts_match_the_collections_host_facts(api):
    # The agent re-implements the collection's parsing (hosts do not install the collection):
    # both must describe this machine the same way.
    from ansible_collections.spectr.core.plugins.module_utils import _host_facts as collection

    facts = api.get("/v1/facts").json()
    assert facts["os"] == collection.parse_os_release(Path("/etc/os-release").read_text())
    assert facts["cpu"] == collection.parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    memory = collection.parse_meminfo(Path("/proc/meminfo").read_text())
    assert facts["memory"].keys() == memory.keys()
    assert facts["memory"]["total_mb"] == memory["total_mb"]
    mounts = collection.parse_mounts(Path("/proc/mounts").read_text())
    assert [disk["mount"] for disk in facts["disks"]] == [mount for _, mount, _ in mounts]
    csv = "0, GPU-abc, NVIDIA H200, 143771, [N/A], 560.35.03"
    from agent.facts import parse_nvidia_smi_csv

    ours = parse_nvidia_smi_csv(csv, "12.6")
    theirs = [{**gpu, "cuda_version": "12.6"} for gpu in collection.parse_nvidia_smi_csv(csv)]
    assert ours == theirs


def test_facts_read_gpus_from_nvidia_smi(agent_factory, pki, tmp_path):
    # There is no GPU here: a stand-in nvidia-smi prints what the real one prints.
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '--query-gpu=*utilization*) echo "0, GPU-abc, NVIDIA H200, 143771, 512, 87, 64, 412.35";;\n'
        '--query-gpu=*) echo "0, GPU-abc, NVIDIA H200, 143771, 512, 560.35.03";;\n'
        '*) echo "| NVIDIA-SMI 560.35.03   Driver Version: 560.35.03   CUDA Version: 12.6 |";;\n'
        "esac\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    gpu_agent = agent_factory(env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    with gpu_agent.http(pki.ca.cert_path) as client:
        gpus = client.get("/v1/facts").json()["gpus"]
        metrics = client.get("/metrics").text
        health = client.get("/v1/health").json()
    assert gpus == [{"index": 0, "uuid": "GPU-abc", "name": "NVIDIA H200",
                     "memory_total_mb": 143771, "memory_used_mb": 512,
                     "driver_version": "560.35.03", "cuda_version": "12.6"}]  # fmt: skip
    labels = '{index="0",name="NVIDIA H200",uuid="GPU-abc"}'
    assert f"spectr_gpu_memory_used_bytes{labels} 5.36870912e+08" in metrics
    assert f"spectr_gpu_utilization_ratio{labels} 0.87" in metrics
    assert f"spectr_gpu_temperature_celsius{labels} 64.0" in metrics
    assert f"spectr_gpu_power_watts{labels} 412.35" in metrics
    # the readings ride on the health answer the portal's sweep asks for (its GPU charts)
    assert health["gpus"] == [{"index": 0, "uuid": "GPU-abc", "name": "NVIDIA H200",
                               "memory_total_mb": 143771, "memory_used_mb": 512,
                               "utilization_percent": 87.0, "temperature_celsius": 64.0,
                               "power_watts": 412.35}]  # fmt: skip


def test_openapi_document_lists_exactly_the_routes(api, agent):
    document = api.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {(m.upper(), path) for path, item in document["paths"].items() for m in item}
    config = AgentConfig(**agent.config)
    routed = {(m, p.replace(":path}", "}")) for m, p in AgentApp(config).router.patterns}
    assert documented == routed
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["summary"] and "401" in operation["responses"]


def test_metrics_cover_host_containers_and_agent(api, run_container):
    container = run_container(["sleep", "infinity"], "metrics")
    text = api.get("/metrics").text
    assert "process_resident_memory_bytes" in text
    assert 'spectr_host_cpu_seconds_total{mode="idle"}' in text
    assert "spectr_engine_up 1.0" in text
    assert (
        f'spectr_container_memory_bytes{{id="{container.id[:12]}",name="{container.name}"}}' in text
    )


def test_images_list_and_inspect(api, image):
    listed = api.get("/v1/images").json()
    assert any(image in entry["tags"] for entry in listed)
    one = api.get(f"/v1/images/{quote(image, safe='')}").json()
    assert image in one["tags"] and one["size"] > 0
    assert api.get("/v1/images/spectr-test-none%3A1").status_code == 404


def test_pull_streams_progress_then_done(api, registry):
    reference = registry.push_tiny_image("spectr-test/pull", "v1")
    answer = api.post("/v1/images/pull", json={"image": reference})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    events = _lines(answer)
    assert any("Pulling" in (event.get("status") or "") for event in events)
    assert events[-1]["status"] == "done" and reference in events[-1]["image"]["tags"]
    removed = api.delete(f"/v1/images/{quote(reference, safe='')}")
    assert removed.status_code == 200 and removed.json()["deleted"]
    assert api.get(f"/v1/images/{quote(reference, safe='')}").status_code == 404


def test_pull_of_a_missing_tag_is_404(api, registry):
    registry.push_tiny_image("spectr-test/pull", "present")
    answer = api.post(
        "/v1/images/pull", json={"image": f"{registry.address}/spectr-test/pull:absent"}
    )
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_pull_requires_an_image(api):
    answer = api.post("/v1/images/pull", json={"image": ""})
    assert answer.status_code == 422


def test_removing_an_image_in_use_is_a_conflict(api, registry, docker_client, container_names):
    reference = registry.push_tiny_image("spectr-test/inuse", "v1")
    docker_client.images.pull(reference)
    holder = docker_client.containers.create(reference, name=container_names("inuse"))
    try:
        answer = api.delete(f"/v1/images/{quote(reference, safe='')}")
        assert answer.status_code == 409 and answer.json()["code"] == "conflict"
    finally:
        holder.remove(force=True)
        docker_client.images.remove(reference, force=True)


def test_pull_with_credentials_leaves_them_out_of_the_log(api, agent, auth_registry, docker_client):
    from agent.tests.registry_seed import push_tiny_image

    with auth_registry.http() as client:
        push_tiny_image(client, "spectr-test/secret", "v1", b"secret\n")
    reference = f"{auth_registry.address}/spectr-test/secret:v1"
    auth = {"username": auth_registry.user, "password": auth_registry.password,
            "serveraddress": auth_registry.address}  # fmt: skip
    try:
        events = _lines(api.post("/v1/images/pull", json={"image": reference, "auth": auth}))
        assert events[-1]["status"] == "done"
    finally:
        docker_client.images.remove(reference, force=True)
    assert auth_registry.password not in agent.log_path.read_text()
    assert auth_registry.password not in json.dumps(events)
