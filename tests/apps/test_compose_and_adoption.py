"""A two-service compose application, logs and exec through the engine relay, and adoption of
a container started outside Spectr, all on the real Docker engine of the Spectr node."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import docker
import pytest

from portal.extensions import db
from portal.hosts.models import HostGpu
from tests.apps.helpers import get_json, succeeded
from tests.portal.conftest import ApiClient

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _compose_yaml(image: str, port: int) -> str:
    return f"""
services:
  api:
    image: {image}
    command: ["python3", "/srv/server.py", "--port", "8000", "--model", "front"]
    ports: ["127.0.0.1:{port}:8000"]
  sidecar:
    image: {image}
    command: ["python3", "/srv/server.py", "--port", "8001", "--model", "sidecar"]
"""


def test_two_service_compose_app_deployed_checked_and_removed(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    compose_plugin: str,
    docker_client: docker.DockerClient,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    api = api_as("operator")
    name, port = unique_name("compose"), free_port()
    cleanup_containers.append(name)
    body = {
        "name": name,
        "host_id": local_host.id,
        "kind": "compose",
        "compose": _compose_yaml(standin_image, port),
    }
    created = api.post("/api/v1/apps", json=body)
    assert created.status_code == 201, created.json
    succeeded(api, created.json["last_operation_id"])
    containers = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={name}"}
    )
    services = {c.labels["com.docker.compose.service"]: c for c in containers}
    assert set(services) == {"api", "sidecar"}
    assert all(c.status == "running" and c.labels["spectr.app"] == name for c in containers)
    assert get_json(f"http://127.0.0.1:{port}/v1/models")["data"][0]["id"] == "front"

    # The services reach each other on the project's network: exec through the relay.
    app_id = created.json["id"]
    probe = {"argv": ["curl", "-sf", "http://sidecar:8001/v1/models"], "container": "api"}
    answer = api.post(f"/api/v1/apps/{app_id}/exec", json=probe)
    assert answer.status_code == 200, answer.json
    assert answer.json["exit_code"] == 0 and '"sidecar"' in answer.json["stdout"]
    shown = api.get(f"/api/v1/apps/{app_id}?refresh=1").json
    assert shown["status"] == "running" and "sidecar" in shown["status_detail"]

    succeeded(api, api.post(f"/api/v1/apps/{app_id}/remove").json["id"])
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={name}"}
        )
        == []
    )


def test_compose_yaml_that_breaks_the_spec_is_refused_before_anything_runs(
    api_as: Callable[[str], ApiClient], local_host: Any
) -> None:
    api = api_as("operator")
    bad = "services:\n  web:\n    image: nginx:1\n    restart: sometimes-maybe\n    portz: [80]\n"
    answer = api.post(
        "/api/v1/apps",
        json={"name": "bad-compose", "host_id": local_host.id, "kind": "compose", "compose": bad},
    )
    assert answer.status_code == 422
    problems = " ".join(answer.json["details"]["compose"])
    assert "portz" in problems
    not_yaml = api.post(
        "/api/v1/apps",
        json={
            "name": "bad2",
            "host_id": local_host.id,
            "kind": "compose",
            "compose": "services: [\n",
        },
    )
    assert not_yaml.status_code == 422 and "YAML" in not_yaml.json["message"]
    no_image = "services:\n  web:\n    build: .\n"
    built = api.post(
        "/api/v1/apps",
        json={"name": "bad3", "host_id": local_host.id, "kind": "compose", "compose": no_image},
    )
    assert built.status_code == 422 and "image" in built.json["message"]
    assert api.get("/api/v1/apps").json == []


def test_logs_and_exec_relay_through_the_engine(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    api = api_as("operator")
    name, port = unique_name("relay"), free_port()
    cleanup_containers.append(name)
    container = {"image": standin_image, "command": ["python3", "/srv/server.py", "--model", "relay"],
                 "ports": [{"container_port": 8000, "host_port": port}], "pull": "never"}  # fmt: skip
    created = api.post(
        "/api/v1/apps", json={"name": name, "host_id": local_host.id, "container": container}
    )
    assert created.status_code == 201, created.json
    succeeded(api, created.json["last_operation_id"])
    app_id = created.json["id"]
    get_json(f"http://127.0.0.1:{port}/v1/models")  # makes the server log a request line
    logs = api.get(f"/api/v1/apps/{app_id}/logs?tail=50").json
    text = "".join(line["data"] for line in logs["lines"])
    assert "stand-in model server for relay" in text and "GET /v1/models" in text
    followed = api.get(f"/api/v1/apps/{app_id}/logs?tail=5&follow=1", buffered=False)
    first = next(chunk for chunk in followed.response if b"event: line" in chunk)
    followed.close()
    assert b"GET /v1/models" in first or b"stand-in" in first
    answer = api.post(
        f"/api/v1/apps/{app_id}/exec", json={"command": "sh -c 'echo out; echo err >&2; exit 3'"}
    )
    assert answer.json == {
        "container": name,
        "exit_code": 3,
        "stdout": "out\n",
        "stderr": "err\n",
        "timed_out": False,
    }
    assert (
        api_as("viewer").post(f"/api/v1/apps/{app_id}/exec", json={"argv": ["true"]}).status_code
        == 403
    )
    assert api.post(f"/api/v1/apps/{app_id}/exec", json={"command": "'unclosed"}).status_code == 422


def test_container_started_outside_spectr_is_adopted_without_restart(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    docker_client: docker.DockerClient,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    name, port = unique_name("adopt"), free_port()
    cleanup_containers.append(name)
    outside = docker_client.containers.run(
        standin_image, ["python3", "/srv/server.py", "--model", "outside"], name=name, detach=True,
        ports={"8000/tcp": ("127.0.0.1", port)}, labels={"team": "ml"},
    )  # fmt: skip
    outside.reload()
    started_at = outside.attrs["State"]["StartedAt"]
    api = api_as("operator")
    found = api.get(f"/api/v1/hosts/{local_host.id}/adoptable").json
    assert {"kind": "container", "name": name} in [
        {"kind": f["kind"], "name": f["name"]} for f in found
    ]
    adopted = api.post("/api/v1/apps/adopt", json={"host_id": local_host.id, "name": name})
    assert adopted.status_code == 201, adopted.json
    assert adopted.json["adopted"] is True and adopted.json["status"] == "running"
    spec = adopted.json["revisions"][0]["spec"]
    assert spec["image"] == standin_image and spec["labels"] == {"team": "ml"}
    assert spec["ports"][0]["host_port"] == port
    outside.reload()
    assert outside.attrs["State"]["StartedAt"] == started_at  # not restarted
    assert get_json(f"http://127.0.0.1:{port}/v1/models")["data"][0]["id"] == "outside"
    assert name not in [f["name"] for f in api.get(f"/api/v1/hosts/{local_host.id}/adoptable").json]
    # Now managed like any other application: stopped through Spectr.
    succeeded(api, api.post(f"/api/v1/apps/{adopted.json['id']}/stop").json["id"])
    outside.reload()
    assert outside.status == "exited"
    assert (
        api.post("/api/v1/apps/adopt", json={"host_id": local_host.id, "name": name}).status_code
        == 409
    )


def test_port_taken_on_the_host_is_refused_before_any_change(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    docker_client: docker.DockerClient,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    holder, port = unique_name("holder"), free_port()
    cleanup_containers.append(holder)
    docker_client.containers.run(standin_image, ["python3", "/srv/server.py"], name=holder, detach=True,
                                 ports={"8000/tcp": ("127.0.0.1", port)})  # fmt: skip
    api = api_as("operator")
    container = {
        "image": standin_image,
        "ports": [{"container_port": 8000, "host_port": port}],
        "pull": "never",
    }
    answer = api.post(
        "/api/v1/apps",
        json={"name": unique_name("late"), "host_id": local_host.id, "container": container},
    )
    assert answer.status_code == 409
    assert f"Port {port}" in answer.json["message"] and holder in answer.json["message"]
    assert api.get("/api/v1/apps").json == []
    invalid = api.post(
        "/api/v1/apps",
        json={"name": "x", "host_id": local_host.id, "container": {"image": "Bad Image"}},
    )
    assert invalid.status_code == 422 and "whitespace" in invalid.json["message"]


def test_port_held_by_a_process_on_the_spectr_node_is_refused(
    api_as: Callable[[str], ApiClient], local_host: Any, standin_image: str
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        container = {"image": standin_image, "ports": [{"container_port": 8000, "host_port": port}]}
        answer = api_as("operator").post(
            "/api/v1/apps", json={"name": "late", "host_id": local_host.id, "container": container}
        )
    assert answer.status_code == 409
    assert (
        answer.json["message"]
        == f"Port {port} on '{local_host.name}' is already in use by another process."
    )


def test_adopted_containers_hold_their_gpus_within_the_projects_quota(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    docker_client: docker.DockerClient,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
) -> None:
    # No GPU exists here: the host's GPU facts are written as a GPU host's agent reports them,
    # and the containers are created, never started (the engine keeps their GPU requests as
    # asked; starting them would need the nvidia runtime).
    local_host.gpus = [
        HostGpu(index=0, uuid="GPU-0a", model="H100", memory_total_mib=81559),
        HostGpu(index=1, uuid="GPU-1b", model="H100", memory_total_mib=81559),
    ]
    db.session.commit()
    admin, api = api_as("admin"), api_as("operator")
    project = f"/api/v1/projects/{local_host.project_id}"
    assert admin.patch(project, json={"gpu_limit": 1}).status_code == 200

    def outside(what: str, request: docker.types.DeviceRequest) -> str:
        name = unique_name(what)
        cleanup_containers.append(name)
        docker_client.containers.create(
            standin_image, ["sleep", "infinity"], name=name, device_requests=[request]
        )
        return name

    by_uuid = outside("gpu-uuid", docker.types.DeviceRequest(device_ids=["GPU-1b"], capabilities=[["gpu"]]))  # fmt: skip
    every = outside("gpu-all", docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]]))
    detail = api.get(f"/api/v1/hosts/{local_host.id}/containers/{by_uuid}").json
    assert detail["gpus"] == {"count": -1, "device_ids": ["GPU-1b"], "driver": "nvidia"}
    adopted = api.post("/api/v1/apps/adopt", json={"host_id": local_host.id, "name": by_uuid})
    assert adopted.status_code == 201, adopted.json
    assert adopted.json["revisions"][0]["spec"]["gpus"] == [1]
    assert admin.get(project).json["usage"]["gpus"]["used"] == 1
    # The second asks for every GPU of the host: over the project's one.
    refused = api.post("/api/v1/apps/adopt", json={"host_id": local_host.id, "name": every})
    assert refused.status_code == 409, refused.json
    assert refused.json["details"] == {"quota": "gpus", "used": 1, "requested": 2, "limit": 1}
    assert every in [f["name"] for f in api.get(f"/api/v1/hosts/{local_host.id}/adoptable").json]
    assert admin.patch(project, json={"gpu_limit": 3}).status_code == 200
    adopted = api.post("/api/v1/apps/adopt", json={"host_id": local_host.id, "name": every})
    assert adopted.status_code == 201, adopted.json
    assert adopted.json["revisions"][0]["spec"]["gpus"] == [0, 1]
    assert admin.get(project).json["usage"]["gpus"]["used"] == 3
