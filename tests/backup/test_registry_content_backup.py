"""Backups of Spectr's registry's content through its HTTP API, into the shared blob store.

Real pieces: a docker-registry process with TLS and htpasswd recorded as Spectr's registry,
the backup operation through the API, the blob store on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from flask import Flask

from agent.tests.registry_process import RegistryProcess, free_port
from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.registry.client import OCI_MANIFEST
from portal.registry.models import Registry
from tests.registry.seed import (
    MANIFEST_V2,
    digest_of,
    push_image,
    push_multiplatform,
    put_manifest,
)

pytestmark = pytest.mark.slow  # a registry process and several backups


def backed_up(api) -> dict:  # type: ignore[no-untyped-def]
    """Run a backup through the API; the finished operation, with its log lines."""
    accepted = api.post("/api/v1/backups")
    assert accepted.status_code == 202, accepted.json
    operation = api.get(accepted.headers["Location"]).json
    lines = api.get(f"/api/v1/operations/{operation['id']}/log").json["lines"]
    operation["log"] = [line["message"] for line in lines]
    return operation


def stored_blobs(app: Flask) -> set[str]:
    folder = Path(app.instance_path, "backups", "blobs", "sha256")
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def test_a_second_backup_copies_nothing_and_deleting_one_keeps_what_others_hold(
    app: Flask, api_as: Callable, spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    admin = api_as("admin")
    with registry_server.http() as http:
        push_image(http, "team/app", "v1", b"first image")
        push_multiplatform(http, "team/multi", "v1")  # an index, two images
    first = backed_up(admin)
    assert first["state"] == "succeeded", first["error"]
    # team/app: manifest, config, layer; team/multi: index, 2 x (manifest, config, layer).
    assert first["result"]["registry"]["blobs_copied"] == 10
    assert first["result"]["registry"]["blobs_reused"] == 0

    second = backed_up(admin)
    copied = second["result"]["registry"]
    assert (copied["blobs_copied"], copied["bytes_copied"], copied["blobs_reused"]) == (0, 0, 10)
    assert copied["bytes"] == first["result"]["registry"]["bytes"]
    assert any("copied 0 (0.0 MB), reused 10" in line for line in second["log"]), second["log"]
    with tarfile.open(Path(app.instance_path, "backups", second["result"]["name"])) as packed:
        assert packed.getnames()[:2] == ["manifest.json", "registry"]  # small members first
        index = json.load(packed.extractfile("registry/content.json"))  # type: ignore[arg-type]
        manifest = json.load(packed.extractfile("manifest.json"))  # type: ignore[arg-type]
    multi = index["repositories"]["team/multi"]
    assert multi["manifests"][-1]["digest"] == multi["tags"]["v1"]  # the index after its images
    assert manifest["registry_content"]["models"]["stored_as"].startswith("OCI artifacts")

    with registry_server.http() as http:
        push_image(http, "team/other", "v1", b"second image")
    third = backed_up(admin)
    assert third["result"]["registry"]["blobs_copied"] == 3
    assert len(stored_blobs(app)) == 13

    operator, name = api_as("operator"), first["result"]["name"]
    assert operator.delete(f"/api/v1/backups/{name}").status_code == 403
    assert operator.post(f"/api/v1/backups/{name}/restore-registry").status_code == 403
    assert (
        admin.post("/api/v1/backups/spectr-backup-none.tar.gz/restore-registry").status_code == 404
    )
    deleted = admin.delete(f"/api/v1/backups/{first['result']['name']}")
    assert deleted.status_code == 200, deleted.json
    assert deleted.json["blobs_removed"] == 0  # the second and third backups hold all of them
    untag = admin.delete(f"{base_of(spectr_registry)}/repositories/team/other/tags/v1")
    assert untag.status_code == 200
    assert backed_up(admin)["result"]["registry"]["blobs_copied"] == 0
    deleted = admin.delete(f"/api/v1/backups/{third['result']['name']}").json
    assert deleted["blobs_removed"] == 3  # only the third backup held team/other's image
    assert len(stored_blobs(app)) == 10
    actions = {e.action for e in db.session.query(AuditEvent).filter_by(target=f"backup:{third['result']['name']}")}  # fmt: skip
    assert "backup.delete" in actions


def base_of(registry: Registry) -> str:
    return f"/api/v1/registries/{registry.id}"


def test_an_unreachable_registry_fails_the_backup_but_keeps_the_database_and_keys(
    app: Flask, api_as: Callable
) -> None:
    db.session.add(Registry(name="spectr", kind="spectr", url=f"https://127.0.0.1:{free_port()}"))
    db.session.commit()
    admin = api_as("admin")

    operation = backed_up(admin)

    assert operation["state"] == "failed"
    assert "holds the database and keys but not the registry's content" in operation["error"]
    [kept] = admin.get("/api/v1/backups").json
    assert kept["name"] in operation["error"]
    with tarfile.open(Path(app.instance_path, "backups", kept["name"])) as packed:
        manifest = json.load(packed.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert "instance/encryption.key" in packed.getnames()
    assert "Cannot reach registry" in manifest["registry_content"]["error"]


def test_a_large_blob_is_streamed_through_never_held_whole(
    app: Flask,
    spectr_registry: Registry,
    registry_server: RegistryProcess,
    start_test_registry: Callable[..., RegistryProcess],
) -> None:
    from portal.backup import restore, service

    size = 48 * 1024 * 1024
    piece = os.urandom(1024 * 1024)
    layer = hashlib.sha256()
    for _ in range(48):
        layer.update(piece)
    digest = "sha256:" + layer.hexdigest()
    with registry_server.http() as http:
        started = http.post("/v2/big/model/blobs/uploads/")
        upload = httpx.URL(started.headers["location"]).copy_merge_params({"digest": digest})
        assert http.put(upload, content=iter([piece] * 48), timeout=120).status_code == 201
        config = b'{"architecture": "amd64", "os": "linux"}'
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digest, "size": size}],
        }  # fmt: skip
        started = http.post("/v2/big/model/blobs/uploads/")
        upload = httpx.URL(started.headers["location"]).copy_merge_params(
            {"digest": digest_of(config)}
        )
        http.put(upload, content=config).raise_for_status()
        put_manifest(http, "big/model", "v1", json.dumps(manifest).encode(), OCI_MANIFEST)

    tracemalloc.start()
    try:
        archive = service.create_backup()
        _, backup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fresh = start_test_registry("fresh")  # an empty registry takes the old one's place
        spectr_registry.url = fresh.url
        db.session.commit()
        pushed = restore.restore_registry_content(archive)
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert backup_peak < 8 * 1024 * 1024 and restore_peak < 8 * 1024 * 1024
    stored = Path(app.instance_path, "backups", "blobs", "sha256", digest.split(":")[1])
    assert stored.stat().st_size == size
    assert (pushed["blobs_uploaded"], pushed["bytes_uploaded"]) == (2, size + len(config))
    with fresh.http() as http:
        answer = http.head("/v2/big/model/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert answer.headers["docker-content-digest"] == digest_of(json.dumps(manifest).encode())


def test_restore_puts_the_registry_content_back_in_the_same_command_and_sends_what_lacks(
    app: Flask, spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    from portal.backup import restore, service

    with registry_server.http() as http:
        push_image(http, "team/app", "v1", b"kept")
        push_image(http, "team/app", "v2", b"deleted after the backup")
    archive = service.create_backup()
    with registry_server.http() as http:
        answer = http.head("/v2/team/app/manifests/v2", headers={"Accept": MANIFEST_V2})
        http.delete(f"/v2/team/app/manifests/{answer.headers['docker-content-digest']}")

    lines: list[str] = []
    result = restore.restore_backup(archive, lines.append)

    pushed = result["registry"]
    # Blobs stay until a garbage collection: only the deleted manifest and tag go back.
    assert (pushed["blobs_uploaded"], pushed["blobs_present"], pushed["tags"]) == (0, 4, 2)
    assert any("Registry content restored" in line for line in lines), lines
    with registry_server.http() as http:
        assert http.head("/v2/team/app/manifests/v2", headers={"Accept": MANIFEST_V2}).is_success
