"""Garbage collection as an operation: a real ansible-runner run on this node, real registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from portal.registry.models import Registry
from tests.registry.registry_process import RegistryProcess
from tests.registry.seed import push_image

pytestmark = pytest.mark.slow  # docker-registry process and an ansible run


def blob_count(registry: RegistryProcess) -> int:
    blobs = Path(registry.root, "data/docker/registry/v2/blobs")
    return sum(1 for path in blobs.rglob("data") if path.is_file())


def test_gc_operation_deletes_blobs_of_deleted_tags_and_logs_them(
    api_as: Callable, spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    with registry_server.http() as http:
        push_image(http, "team/app", "doomed", b"only in the doomed image")
        push_image(http, "team/app", "kept", b"kept image")
    before = blob_count(registry_server)
    api = api_as("operator")
    base = f"/api/v1/registries/{spectr_registry.id}"
    assert api.delete(f"{base}/repositories/team/app/tags/doomed").status_code == 200

    accepted = api.post(f"{base}/gc")
    assert accepted.status_code == 202, accepted.json
    operation = api.get(accepted.headers["Location"]).json
    assert operation["state"] == "succeeded", operation
    # The doomed image's manifest, config and layer are gone; the kept image is intact.
    assert operation["result"]["deleted_blobs"] == 3
    assert blob_count(registry_server) == before - 3
    log = api.get(f"{accepted.headers['Location']}/log").json["lines"]
    assert any("blob eligible for deletion" in line["message"] for line in log)
    assert api.get(f"{base}/repositories/team/app/tags/kept").status_code == 200


def test_gc_of_an_external_registry_is_refused(
    api_as: Callable, registry_server: RegistryProcess
) -> None:
    api = api_as("operator")
    created = api.post("/api/v1/registries", json={"name": "ext", "url": registry_server.url}).json
    answer = api.post(f"/api/v1/registries/{created['id']}/gc")
    assert answer.status_code == 422
    assert "Spectr deployed" in answer.json["message"]
