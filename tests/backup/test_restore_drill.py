"""The restore drill: Spectr's state and its registry's content onto an empty machine.

The old machine: a portal on Postgres with Spectr's registry (a real docker-registry process),
an image and a multi-platform index pushed to it, a model imported through the API (an OCI
artifact in models/<name>), an application with a secret, an external registry's password, an
admin with a password and an API token. Two backups, the second copying no blob.

The new machine: a new instance folder, a new empty Postgres database, a new empty registry. The
backups folder (archive and blob store) is copied over; `spectr backup restore` brings the
database and keys back and says the registry is not there yet; a registry is started with a
certificate from the restored CA and the restored password (what a redeploy does), and the
restore-registry operation pushes the content back. Everything is then read back: pulled by
digest, by the Docker engine, and onto the node's model cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo

from agent.tests.registry_process import RegistryProcess, start_registry
from portal.app import create_app
from portal.apps.models import AppRevision
from portal.core.pki import ca_certificate_pem, issue_server_certificate
from portal.extensions import db
from portal.registry.client import Credentials, RegistryClient
from portal.registry.manifests import image_blobs, parse_manifest
from portal.registry.models import SPECTR, Registry
from tests.portal.conftest import (
    PASSWORD,
    ApiClient,
    _make_postgres_app,
    _test_config,
    new_postgres_database,
)
from tests.registry.seed import push_image, push_multiplatform
from tests.support.tiny_gguf import write_tiny_llama_gguf

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.docker]

USER, REGISTRY_PASSWORD = "alice", "alice-registry-password"


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A Postgres database with nothing in it: the new machine's."""
    with new_postgres_database("spectr_drill") as url:
        yield url


@pytest.fixture
def registries() -> Iterator[list[RegistryProcess]]:
    started: list[RegistryProcess] = []
    yield started
    for registry in started:
        registry.stop()


def run(api: ApiClient, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Start an operation; return it finished (the queue runs it at once), with its log."""
    accepted = api.request(method, path, **kwargs)
    assert accepted.status_code == 202, accepted.json
    operation = api.get(accepted.headers["Location"]).json
    lines = api.get(f"/api/v1/operations/{operation['id']}/log").json["lines"]
    operation["log"] = [line["message"] for line in lines]
    assert operation["state"] == "succeeded", operation["log"]
    return operation


def registry_on(root: Path, registries: list[RegistryProcess]) -> RegistryProcess:
    """A new, empty registry whose certificate comes from this instance's CA."""
    cert, key = issue_server_certificate("Spectr registry", ["127.0.0.1"])
    registry = start_registry(root, cert, key, ca_certificate_pem(), USER, REGISTRY_PASSWORD)
    registries.append(registry)
    return registry


def content_of(registry: RegistryProcess) -> dict[str, dict[str, str]]:
    """Every repository's tags and the manifest digest each names."""
    credentials = Credentials(registry.url, USER, REGISTRY_PASSWORD, registry.ca_pem)
    with RegistryClient(credentials) as client:
        return {
            repository: {tag: client.manifest_digest(repository, tag)
                         for tag in client.all_tags(repository)}
            for repository in client.repositories(1000).items
        }  # fmt: skip


def pull_every_blob(registry: RegistryProcess, content: dict[str, dict[str, str]]) -> int:
    """Pull each tag by digest and each blob it names, checking sha256; the blobs pulled."""
    credentials = Credentials(registry.url, USER, REGISTRY_PASSWORD, registry.ca_pem)
    pulled = 0
    with RegistryClient(credentials) as client:
        for repository, tags in content.items():
            for digest in tags.values():
                pulled += _pull(client, repository, digest)
    return pulled


def _pull(client: RegistryClient, repository: str, digest: str) -> int:
    _, body, got = client.manifest(repository, digest)
    assert got == digest == "sha256:" + hashlib.sha256(body).hexdigest()
    manifest = parse_manifest(body)
    if "manifests" in manifest:
        return sum(_pull(client, repository, m["digest"]) for m in manifest["manifests"])
    for blob, _size in image_blobs(manifest):
        hasher = hashlib.sha256()
        for chunk in client.stream_blob(repository, blob):
            hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == blob
    return len(image_blobs(manifest))


def build_old_machine(old: Flask, tmp_path: Path, registries: list) -> dict[str, Any]:
    """Fill the old machine; return what the new one must show and the admin's token."""
    from portal.admin import service as admin
    from portal.hosts.service import ensure_local_host
    from portal.registry import service as registry_service

    r1 = registry_on(tmp_path / "old-registry", registries)
    db.session.add(Registry(name="spectr", kind=SPECTR, url=r1.url, username=USER,
                            password=REGISTRY_PASSWORD, ca_pem=r1.ca_pem))  # fmt: skip
    db.session.commit()
    user = admin.create_user("drill-admin", PASSWORD, "admin")
    _, token = admin.create_token(user, "drill", 30)
    api = ApiClient(old.test_client(), token)
    with r1.http() as http:
        image = push_image(http, "team/app", "v1", b"the application's image")
        push_multiplatform(http, "team/multi", "v1")
    gguf = write_tiny_llama_gguf(tmp_path / "tiny.gguf", seed=7)
    with gguf.open("rb") as body:
        run(api, "POST", "/api/v1/models/uploads?name=tiny&filename=tiny.gguf", data=body,
            headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    node = ensure_local_host()
    created = api.post("/api/v1/apps", json={
        "name": "svc", "host_id": node.id, "deploy": False,
        "container": {"image": f"{r1.address}/team/app:v1"},
        "secret_env": {"API_TOKEN": "app-secret-value"},
    })  # fmt: skip
    assert created.status_code in (201, 202), created.json
    registry_service.create_registry(
        {"name": "harbor", "url": "https://harbor.internal", "username": "robot",
         "password": "robot-secret"}
    )  # fmt: skip
    return {"api": api, "token": token, "r1": r1, "image": image, "gguf": gguf}


def test_restore_onto_an_empty_machine_brings_back_apps_keys_images_and_models(
    tmp_path: Path, postgres_migrated: str, empty_database: str, registries: list
) -> None:
    old = _make_postgres_app(tmp_path / "old", postgres_migrated)
    with old.app_context():
        built = build_old_machine(old, tmp_path, registries)
        started = time.monotonic()
        first = run(built["api"], "POST", "/api/v1/backups")
        first_seconds, started = time.monotonic() - started, time.monotonic()
        second = run(built["api"], "POST", "/api/v1/backups")
        second_seconds = time.monotonic() - started
        before = content_of(built["r1"])
        db.session.remove()
        db.engine.dispose()
    built["r1"].stop()  # the old machine is gone
    copied, reused = first["result"]["registry"], second["result"]["registry"]
    assert copied["blobs_copied"] == copied["blobs"] > 0
    assert (reused["blobs_copied"], reused["blobs_reused"]) == (0, copied["blobs"])
    print(
        f"\nbackups: first {first_seconds:.2f} s {copied}, second {second_seconds:.2f} s {reused}"
    )

    new_instance = tmp_path / "new"
    shutil.copytree(tmp_path / "old" / "backups", new_instance / "backups")  # scp to the new box
    archive = new_instance / "backups" / second["result"]["name"]
    restored = _restore_with_the_cli(new_instance, empty_database, archive)
    assert "Restored, except the registry's content" in restored.stdout
    assert "spectr backup restore-registry" in restored.stderr

    # The portal starts again on the new machine: it reads the restored keys.
    new = create_app(_test_config(new_instance, empty_database,
                                  SPECTR_MODELS_DIR=str(tmp_path / "node-models")))  # fmt: skip
    with new.app_context():
        _check_the_new_machine(new, built, before, tmp_path, registries, archive.name)
        db.session.remove()
        db.engine.dispose()


def _restore_with_the_cli(instance: Path, database_url: str, archive: Path) -> Any:
    from portal.cli import cli

    fresh = create_app(_test_config(instance, database_url))  # its own new keys, no tables
    restored = CliRunner().invoke(
        cli, ["backup", "restore", str(archive), "--yes"], obj=ScriptInfo(create_app=lambda: fresh)
    )
    assert restored.exit_code == 0, restored.output
    with fresh.app_context():
        db.engine.dispose()
    return restored


def _check_the_new_machine(
    new: Flask, built: dict, before: dict, tmp_path: Path, registries: list, backup: str
) -> None:
    from portal.admin import service as admin
    from portal.registry import service as registry_service

    api = ApiClient(new.test_client(), built["token"])  # the old admin's API token works
    spectr = registry_service.spectr_registry()
    assert spectr is not None and spectr.password == REGISTRY_PASSWORD  # decrypts
    r2 = registry_on(tmp_path / "new-registry", registries)  # deployed anew: empty
    assert content_of(r2) == {}
    patched = api.patch(f"/api/v1/registries/{spectr.id}", json={"url": r2.url})
    assert patched.status_code == 200, patched.json

    pushed = run(api, "POST", f"/api/v1/backups/{backup}/restore-registry")

    assert pushed["result"]["blobs_uploaded"] > 0 and pushed["result"]["repositories"] == 3
    after = content_of(r2)
    assert after == before  # same repositories, tags and manifest digests
    assert pull_every_blob(r2, after) == 8  # config and layer: team/app 1, multi 2, model 1
    _docker_pulls(r2, after["team/app"]["v1"])
    _model_reaches_the_node(api)
    assert admin.authenticate_password("drill-admin", PASSWORD) is not None
    login = new.test_client().post("/login", data={"username": "drill-admin", "password": PASSWORD})
    assert login.status_code == 302
    [app] = api.get("/api/v1/apps").json
    assert app["name"] == "svc"
    revision = db.session.query(AppRevision).filter_by(app_id=app["id"]).one()
    assert json.loads(revision.secret_env) == {"API_TOKEN": "app-secret-value"}  # decrypts
    harbor = next(r for r in registry_service.list_registries() if r.name == "harbor")
    assert harbor.password == "robot-secret"


def _docker_pulls(registry: RegistryProcess, digest: str) -> None:
    engine = docker.from_env(timeout=120)
    reference = f"{registry.address}/team/app@{digest}"
    try:
        pulled = engine.images.pull(reference, auth_config={"username": USER,
                                                            "password": REGISTRY_PASSWORD})  # fmt: skip
        assert reference in pulled.attrs["RepoDigests"]
    finally:
        try:
            engine.images.remove(reference, force=True)
        finally:
            engine.close()


def _model_reaches_the_node(api: ApiClient) -> None:
    from portal.hosts.service import ensure_local_host

    [model] = [m for m in api.get("/api/v1/models").json if m["name"] == "tiny"]
    node = ensure_local_host()
    done = run(api, "POST", f"/api/v1/models/{model['id']}/distribute",
               json={"host_ids": [node.id]})  # fmt: skip
    assert any("tiny.gguf fetched" in line for line in done["log"]), done["log"]
