"""Images into Spectr's registry: archive import through the API, mirror from a registry or
the node's engine. Real Docker engine, real docker-registry processes on 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from flask import Flask

from agent.tests.registry_process import RegistryProcess
from portal.registry.models import Registry
from tests.registry.docker_images import make_image, remove_image, save_image
from tests.registry.seed import push_multiplatform

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    subprocess.run(["scripts/ensure-docker.sh"], check=True, capture_output=True)
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture
def saved_archive(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An image saved to a file and then removed from the engine: the archive is its only copy."""
    reference = make_image(docker_client, b"imported through spectr\n")
    archive = save_image(docker_client, reference, tmp_path / "image.tar")
    remove_image(docker_client, reference)
    yield reference, archive
    remove_image(docker_client, reference)


def test_archive_upload_returns_an_operation_that_lands_the_image_in_the_registry(
    app: Flask,
    api_as: Callable,
    spectr_registry: Registry,
    registry_server: RegistryProcess,
    saved_archive: tuple[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    reference, archive = saved_archive
    repository, tag = reference.split(":")
    api = api_as("operator")
    with archive.open("rb") as body:
        accepted = api.post(
            "/api/v1/registries/spectr/imports",
            data=body,
            headers={"Content-Type": "application/x-tar"},
        )
    assert accepted.status_code == 202, accepted.json
    operation = api.get(accepted.headers["Location"]).json
    assert operation["state"] == "succeeded", operation
    assert operation["result"]["images"][0]["reference"] == f"{registry_server.address}/{reference}"
    tags = api.get(f"/api/v1/registries/{spectr_registry.id}/repositories/{repository}/tags").json
    assert tags["items"] == [tag]
    with registry_server.http() as http:  # the registry serves the image's manifest
        answer = http.get(f"/v2/{repository}/manifests/{tag}")
        assert answer.status_code == 200
    uploads = Path(app.instance_path, "uploads")
    assert list(uploads.iterdir()) == []  # the archive is deleted once imported
    with pytest.raises(docker.errors.ImageNotFound):  # nor kept on the Spectr node
        docker_client.images.get(reference)


def test_upload_that_is_not_an_archive_fails_with_a_readable_error(
    api_as: Callable, spectr_registry: Registry
) -> None:
    api = api_as("operator")
    accepted = api.post(
        "/api/v1/registries/spectr/imports",
        data=b"definitely not a tar archive" * 100,
        headers={"Content-Type": "application/x-tar"},
    )
    assert accepted.status_code == 202
    operation = api.get(accepted.headers["Location"]).json
    assert operation["state"] == "failed"
    assert "not an image archive from `docker save`" in operation["error"]
    wrong_type = api.post("/api/v1/registries/spectr/imports", json={"archive": "in json?"})
    assert wrong_type.status_code == 415


def test_import_without_a_spectr_registry_is_a_conflict(api_as: Callable) -> None:
    answer = api_as("operator").post(
        "/api/v1/registries/spectr/imports",
        data=b"x",
        headers={"Content-Type": "application/x-tar"},
    )
    assert answer.status_code == 409 and "not deployed" in answer.json["message"]


def test_mirror_from_another_registry_copies_every_platform(
    api_as: Callable,
    spectr_registry: Registry,
    start_test_registry: Callable[..., RegistryProcess],
) -> None:
    source = start_test_registry("source", user="bob", password="bob-source-password")
    with source.http() as http:
        index_digest = push_multiplatform(http, "vendor/model-server", "2.1")
    api = api_as("operator")
    external = api.post("/api/v1/registries", json={
        "name": "vendor", "url": source.url, "username": "bob",
        "password": "bob-source-password", "ca_pem": source.ca_pem}).json  # fmt: skip
    accepted = api.post(
        "/api/v1/registries/spectr/mirror",
        json={"source": "vendor/model-server:2.1", "source_registry_id": external["id"],
              "target": "mirrored/model-server:2.1"},
    )  # fmt: skip
    assert accepted.status_code == 202, accepted.json
    operation = api.get(accepted.headers["Location"]).json
    assert operation["state"] == "succeeded", operation
    assert operation["result"]["digest"] == index_digest
    assert operation["progress"] == 1.0
    copied = api.get(
        f"/api/v1/registries/{spectr_registry.id}/repositories/mirrored/model-server/tags/2.1"
    ).json
    assert copied["digest"] == index_digest
    assert copied["platforms"] == ["linux/amd64", "linux/arm64"]


def test_mirror_from_the_node_engine_pushes_the_local_image(
    api_as: Callable,
    spectr_registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    reference = make_image(docker_client, b"built on the spectr node\n")
    try:
        api = api_as("operator")
        accepted = api.post("/api/v1/registries/spectr/mirror", json={"source": reference})
        operation = api.get(accepted.headers["Location"]).json
        assert operation["state"] == "succeeded", operation
        repository, tag = reference.split(":")
        shown = api.get(
            f"/api/v1/registries/{spectr_registry.id}/repositories/{repository}/tags/{tag}"
        ).json
        assert shown["digest"] == operation["result"]["digest"]
    finally:
        remove_image(docker_client, reference)


def test_an_archive_larger_than_the_free_disk_is_refused_before_reading(
    api_as: Callable, spectr_registry: Registry
) -> None:
    answer = api_as("operator").post(
        "/api/v1/registries/spectr/imports",
        data=b"",
        headers={"Content-Type": "application/x-tar"},
        environ_overrides={"CONTENT_LENGTH": str(2**62)},  # announced, never sent
    )
    assert answer.status_code == 413
    assert "does not fit" in answer.json["message"]
