"""Garbage collection as an operation while the registry serves, and the read-only mode.

Real pieces: Spectr's registry deployed on this node by the spectr.core.registry role, the
role's registry-maintenance script (run by a real ansible-runner play, or by hand), pushes
over the HTTP API and by the Docker engine, and pulls, racing the collection in threads.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from flask import Flask

from agent.tests.registry_process import RegistryProcess
from portal.registry import service
from portal.registry.client import MANIFEST_V2, Credentials, RegistryClient
from portal.registry.errors import RegistryReadOnly
from portal.registry.manifests import image_blobs, parse_manifest
from portal.registry.models import Registry
from portal.settings.service import get_setting
from tests.registry.docker_images import make_image, remove_image
from tests.registry.gc_race import Attempt, Race, docker_pusher, http_puller, http_pusher
from tests.registry.seed import digest_of, image_parts, push_image

pytestmark = pytest.mark.slow  # a registry deployed by the role, ansible runs


@pytest.fixture
def deployed_registry(app: Flask, api_as: Callable, deploy_request: dict) -> Registry:
    """Spectr's registry deployed on this node by the role, as an admin would."""
    from portal.hosts.service import ensure_local_host

    admin = api_as("admin")
    deploy_request["host_id"] = ensure_local_host().id
    accepted = admin.post("/api/v1/registries/spectr/deploy", json=deploy_request)
    operation = admin.get(accepted.headers["Location"]).json
    assert operation["state"] == "succeeded", operation["error"]
    registry = service.spectr_registry()
    assert registry is not None
    return registry


@pytest.fixture
def credentials(deployed_registry: Registry) -> Credentials:
    password = get_setting("registry_password")
    return Credentials(deployed_registry.url, "spectr", password, deployed_registry.ca_pem)


@pytest.fixture
def engine_image() -> Iterator[tuple[docker.DockerClient, str]]:
    engine = docker.from_env(timeout=120)
    image = make_image(engine, b"pushed by the Docker engine during gc")
    yield engine, image
    remove_image(engine, image)
    engine.close()


def push(client: RegistryClient, repository: str, tag: str, content: bytes) -> list[str]:
    """Push a one-layer image; return the digests of its manifest, config and layer."""
    config, layer, manifest = image_parts(content)
    for blob in (config, layer):
        client.upload_blob(repository, digest_of(blob), iter([blob]))
    client.put_manifest(repository, tag, MANIFEST_V2, manifest)
    return [digest_of(manifest), digest_of(config), digest_of(layer)]


def missing_blobs(client: RegistryClient) -> list[str]:
    """Every tag of every repository whose manifest or blobs the registry cannot serve."""
    missing = []
    for repository in client.repositories(1000).items:
        for tag in client.all_tags(repository):
            _, body, _ = client.manifest(repository, tag)
            for digest, _size in image_blobs(parse_manifest(body)):
                if not client.blob_exists(repository, digest):
                    missing.append(f"{repository}:{tag} {digest}")
    return missing


def maintenance(registry: Registry, action: str) -> str:
    """Run the role's maintenance script as ops would on the registry's host."""
    script = Path(str(registry.config_dir), "registry-maintenance")
    done = subprocess.run([script, action], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def docker_push(engine: docker.DockerClient, image: str, target: str, auth: dict) -> str:
    """Push with the Docker engine; return the error it reports ('' when it pushed)."""
    repository, tag = target.rsplit(":", 1)
    engine.images.get(image).tag(repository, tag)
    error = ""
    for line in engine.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
        error = line.get("error", error)
    return error


def pulled(client: RegistryClient, repository: str, tag: str) -> list[str]:
    """Pull a tag (manifest, then each blob with its sha256 checked); return the digests."""
    _, body, digest = client.manifest(repository, tag)
    digests = [digest]
    for blob, _size in image_blobs(parse_manifest(body)):
        hasher = hashlib.sha256()
        for chunk in client.stream_blob(repository, blob):
            hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == blob
        digests.append(blob)
    return digests


@pytest.mark.docker
def test_read_only_mode_refuses_pushes_with_a_clear_error_and_serves_pulls(
    deployed_registry: Registry,
    credentials: Credentials,
    engine_image: tuple[docker.DockerClient, str],
) -> None:
    engine, image = engine_image
    auth = {"username": credentials.username, "password": credentials.password}
    kept, new = (f"{deployed_registry.address}/team/{name}:v1" for name in ("kept", "new"))
    assert docker_push(engine, image, kept, auth) == ""
    with RegistryClient(credentials) as client:
        blobs_before = push(client, "team/app", "v1", b"pushed before maintenance")

    assert "read-only (direct)" in maintenance(deployed_registry, "read-only")
    try:
        with RegistryClient(credentials) as client:
            with pytest.raises(RegistryReadOnly, match=r"read-only for now .*retry in a minute"):
                push(client, "team/app", "v2", b"pushed during maintenance")
            assert pulled(client, "team/app", "v1") == blobs_before
        refused = docker_push(engine, image, new, auth)
        assert "405" in refused and "Method not allowed" in refused, refused
        engine.images.remove(kept)
        engine.images.pull(kept, auth_config=auth)  # the Docker engine still pulls
    finally:
        assert "read-write" in maintenance(deployed_registry, "read-write")
    assert docker_push(engine, image, new, auth) == ""
    for reference in (kept, new):
        remove_image(engine, reference)


@pytest.mark.docker
def test_gc_racing_pushes_and_pulls_loses_no_blob_of_a_manifest(
    api_as: Callable,
    deployed_registry: Registry,
    credentials: Credentials,
    engine_image: tuple[docker.DockerClient, str],
) -> None:
    api = api_as("operator")
    base = f"/api/v1/registries/{deployed_registry.id}"
    with RegistryClient(credentials) as client:
        doomed = push(client, "team/app", "doomed", b"only in the doomed image")
        push(client, "team/app", "kept", b"kept image")
    assert api.delete(f"{base}/repositories/team/app/tags/doomed").status_code == 200
    engine, image = engine_image
    auth = {"username": credentials.username, "password": credentials.password}
    race = Race()
    with RegistryClient(credentials) as pusher, RegistryClient(credentials) as puller:
        race.start("http push", http_pusher(pusher, "team/race"))
        race.start("pull", http_puller(puller, "team/app", "kept"))
        target = f"{deployed_registry.address}/team/docker"
        race.start("docker push", docker_pusher(engine, image, target, auth))
        try:
            accepted = api.post(f"{base}/gc")
            operation = api.get(accepted.headers["Location"]).json
            gc_ended = time.monotonic()
            _wait_for_pushes_after(race, gc_ended)
        finally:
            race.stop()

    assert operation["state"] == "succeeded", operation["error"]
    result = operation["result"]
    assert result["deleted_blobs"] >= 3 and result["read_only_ms"] > 0
    lines = api.get(f"/api/v1/operations/{operation['id']}/log").json["lines"]
    log = [line["message"] for line in lines]
    assert any("read-only (direct): pushes are refused" in line for line in log), log
    assert any("read-write again" in line for line in log), log
    # Each push completed, or was refused (read-only, restarting, its blobs swept): cleanly.
    pushes = race.attempts["http push"]
    assert {a.outcome for a in pushes} <= {"pushed", "read-only", "restarting", "blob-unknown"}
    assert any(a.outcome == "pushed" and a.started > gc_ended for a in pushes)
    for attempt in race.attempts["docker push"]:
        assert attempt.outcome == "pushed" or _docker_refusal(attempt.detail), attempt
    # Each pull got the right bytes, or (only while the registry restarted) no connection.
    pulls = race.attempts["pull"]
    assert {a.outcome for a in pulls} <= {"pulled", "restarting"}, _failures(pulls)
    assert _longest_outage(pulls) < 5.0  # a client retrying for 5 s got every pull
    with RegistryClient(credentials) as client:
        assert missing_blobs(client) == []  # no manifest lost a blob to the sweep
        assert not client.blob_exists("team/app", doomed[2])  # the untagged image is gone
        pushed = {a.tag for a in pushes if a.outcome == "pushed"}
        assert pushed <= set(client.all_tags("team/race"))


def _wait_for_pushes_after(race: Race, moment: float) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = [a for a in race.attempts["http push"] if a.started > moment]
        if sum(a.outcome == "pushed" for a in after) >= 3:
            return
        time.sleep(0.05)


def _longest_outage(attempts: list[Attempt]) -> float:
    """The longest time from a refused attempt's start to the next served one's end."""
    longest, since = 0.0, None
    for attempt in attempts:
        if attempt.outcome == "restarting":
            since = attempt.started if since is None else since
        elif since is not None:
            longest, since = max(longest, attempt.ended - since), None
    return longest


def _failures(attempts: list[Attempt]) -> list[str]:
    return [f"{a.outcome}: {a.detail}" for a in attempts if a.outcome != "pulled"]


def _docker_refusal(message: str) -> bool:
    # What the Docker client prints for distribution's read-only 405 (a plain-text body), or
    # for an upload cut by a restart of the registry. The engine treats 127.0.0.0/8 registries
    # as insecure: when its HTTPS try meets the restart it falls back to plain HTTP, which the
    # registry, up again, refuses ("Client sent an HTTP request to an HTTPS server").
    known = ("405", "Method not allowed", "connection refused", "EOF", "connection reset",
             "HTTP request to an HTTPS server")  # fmt: skip
    return any(text in message for text in known)


def test_gc_of_an_external_registry_is_refused(
    api_as: Callable, registry_server: RegistryProcess
) -> None:
    api = api_as("operator")
    created = api.post("/api/v1/registries", json={"name": "ext", "url": registry_server.url}).json
    answer = api.post(f"/api/v1/registries/{created['id']}/gc")
    assert answer.status_code == 422
    assert "Spectr deployed" in answer.json["message"]


def test_gc_of_a_registry_without_the_roles_script_says_to_redeploy(
    api_as: Callable, spectr_registry: Registry, registry_server: RegistryProcess
) -> None:
    # A registry recorded by hand (as an older Spectr's deploy left it): no read-only window
    # can be opened, so nothing is collected while it serves.
    with registry_server.http() as http:
        push_image(http, "team/app", "v1", b"kept")
    api = api_as("operator")
    accepted = api.post(f"/api/v1/registries/{spectr_registry.id}/gc")
    operation = api.get(accepted.headers["Location"]).json
    assert operation["state"] == "failed"
    assert "registry-maintenance is missing" in operation["error"]
    assert "Deploy it again" in operation["error"]
