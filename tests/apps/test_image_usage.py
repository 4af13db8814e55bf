"""Image catalog against the real engine: which hosts have an image, which apps use it,
pull and remove as operations."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import docker
import pytest

from tests.apps.helpers import succeeded
from tests.portal.conftest import ApiClient

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_image_usage_hosts_and_remove_operation(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    docker_client: docker.DockerClient,
) -> None:
    api = api_as("operator")
    # A throwaway tag of the stand-in image, so removing it leaves the shared image alone.
    tag = f"spectr-test-usage:{local_host.id}x"
    docker_client.images.get(standin_image).tag(tag)
    try:
        image = api.post("/api/v1/catalog/images", json={"reference": tag}).json
        listed = api.post("/api/v1/apps", json={"name": "user-of-it", "host_id": local_host.id,
                                                "container": {"image": tag}, "deploy": False})  # fmt: skip
        assert listed.status_code == 201
        usage = api.get(f"/api/v1/catalog/images/{image['id']}/usage").json
        assert usage["apps"] == [
            {"app_id": listed.json["id"], "name": "user-of-it", "host_id": local_host.id}
        ]
        assert {"host_id": local_host.id, "name": local_host.name, "present": True} in usage[
            "hosts"
        ]

        removed = api.post(
            f"/api/v1/catalog/images/{image['id']}/remove", json={"host_id": local_host.id}
        )
        assert removed.status_code == 202
        succeeded(api, removed.json["id"])
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(tag)
        usage = api.get(f"/api/v1/catalog/images/{image['id']}/usage").json
        assert {"host_id": local_host.id, "name": local_host.name, "present": False} in usage[
            "hosts"
        ]
        # Pulling needs a registry; none is reachable here, so the operation fails and says why.
        pulled = api.post(
            f"/api/v1/catalog/images/{image['id']}/pull", json={"host_id": local_host.id}
        )
        assert pulled.status_code == 202
        failed = api.get(f"/api/v1/operations/{pulled.json['id']}").json
        assert failed["state"] == "failed" and failed["error"]
        assert (
            api.post(
                f"/api/v1/catalog/images/{image['id']}/pull", json={"host_id": 999999}
            ).status_code
            == 404
        )
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag)
