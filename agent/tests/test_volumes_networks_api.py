"""Volume, network and prune endpoints of a real agent, and the container details it now shows.

Objects are made with the docker SDK under a fresh spectr.test label and removed afterwards;
prunes are narrowed to that label (other tests share the engine).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import docker
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture
def run_label(docker_client: docker.DockerClient) -> Iterator[str]:
    """A fresh spectr.test value; volumes, networks and images carrying it go at the end."""
    value = f"agent-{uuid.uuid4().hex[:8]}"
    yield value
    selector = {"label": f"spectr.test={value}"}
    for container in docker_client.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for image in docker_client.images.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(image.id, force=True)
    for volume in docker_client.volumes.list(filters=selector):
        volume.remove(force=True)
    for network in docker_client.networks.list(filters=selector):
        network.remove()


def test_volumes_list_with_sizes_remove_and_refuse_in_use(api, docker_client, run_label, image):
    labels = {"spectr.test": run_label}
    used = docker_client.volumes.create(f"spectr-test-{run_label}-used", labels=labels).name
    spare = docker_client.volumes.create(f"spectr-test-{run_label}-spare", labels=labels).name
    docker_client.containers.run(image, ["sleep", "infinity"], detach=True, labels=labels,
                                 volumes={used: {"bind": "/data", "mode": "rw"}})  # fmt: skip
    listed = {v["name"]: v for v in api.get("/v1/volumes").json()}
    assert listed[used]["labels"] == labels and listed[used]["size"] is not None
    assert set(listed[used]) == {"name", "driver", "mountpoint", "created", "scope", "labels",
                                 "size"}  # fmt: skip
    assert {v["name"]: v["size"] for v in api.get("/v1/volumes?size=0").json()}[used] is None

    in_use = api.delete(f"/v1/volumes/{used}")
    assert in_use.status_code == 409 and in_use.json()["code"] == "conflict"
    assert api.delete(f"/v1/volumes/{spare}").status_code == 204
    assert api.delete(f"/v1/volumes/{spare}").status_code == 404
    assert api.get("/v1/volumes?size=maybe").status_code == 400


def test_volume_and_image_prune_keep_to_the_labels(api, docker_client, run_label, image):
    labels = {"spectr.test": run_label}
    unused = docker_client.volumes.create(f"spectr-test-{run_label}-unused", labels=labels).name
    other = docker_client.volumes.create(f"spectr-test-{run_label}-other",
                                         labels={**labels, "keep": "1"}).name  # fmt: skip
    pruned = api.post("/v1/volumes/prune", params={"label": ["spectr.test", "keep=0"]}).json()
    assert pruned == {"deleted": [], "space_reclaimed": 0}
    pruned = api.post("/v1/volumes/prune", params={"label": f"spectr.test={run_label}"}).json()
    assert sorted(pruned["deleted"]) == sorted([unused, other])

    source = docker_client.containers.run(image, ["sleep", "infinity"], detach=True, labels=labels)
    dangling = source.commit(changes=[f"LABEL spectr.test={run_label}"]).id
    answer = api.post("/v1/images/prune", params={"label": f"spectr.test={run_label}"})
    assert answer.status_code == 200 and answer.json()["deleted"] == [dangling]
    assert api.post("/v1/images/prune", params={"label": "=x"}).status_code == 400


def test_networks_list_remove_and_refuse_builtin_or_busy(api, docker_client, run_label, image):
    labels = {"spectr.test": run_label}
    busy = docker_client.networks.create(f"spectr-test-{run_label}-busy", labels=labels)
    free = docker_client.networks.create(f"spectr-test-{run_label}-free", labels=labels)
    docker_client.containers.run(image, ["sleep", "infinity"], detach=True, labels=labels,
                                 network=busy.name)  # fmt: skip
    listed = {n["name"]: n for n in api.get("/v1/networks").json()}
    assert listed[busy.name]["id"] == busy.id and listed[busy.name]["labels"] == labels
    assert listed[busy.name]["subnets"] and listed["host"]["driver"] == "host"

    for refused in (api.delete(f"/v1/networks/{busy.name}"), api.delete("/v1/networks/bridge")):
        # the engine's 403 is a 409 here: the agent's own 403 would read as a refused token
        assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert api.delete(f"/v1/networks/{free.id}").status_code == 204
    assert api.delete(f"/v1/networks/{free.id}").status_code == 404


def test_container_shapes_carry_mounts_networks_env_and_command(
    api, docker_client, run_label, image
):
    labels = {"spectr.test": run_label}
    volume = docker_client.volumes.create(f"spectr-test-{run_label}-v", labels=labels).name
    container = docker_client.containers.run(
        image, ["sleep", "infinity"], detach=True, labels=labels, environment={"A": "1"},
        volumes={volume: {"bind": "/v", "mode": "ro"}}, restart_policy={"Name": "always"},
    )  # fmt: skip
    shown = api.get(f"/v1/containers/{container.id}").json()
    assert shown["mounts"] == [{"type": "volume", "name": volume, "source": shown["mounts"][0][
        "source"], "destination": "/v", "read_only": True}]  # fmt: skip
    assert shown["networks"][0]["name"] == "bridge" and shown["networks"][0]["ip_address"]
    assert "A=1" in shown["env"] and shown["command"] == ["sleep", "infinity"]
    assert shown["restart_policy"] == "always"
    [listed] = api.get("/v1/containers", params={"label": f"spectr.test={run_label}"}).json()
    assert listed["mounts"] == shown["mounts"] and listed["networks"] == shown["networks"]
