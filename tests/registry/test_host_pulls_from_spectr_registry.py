"""Done-when of the registry issue: a test host runs an application whose image reached it
only through Spectr's registry.

The image is built on this machine, saved to an archive and deleted; the archive goes through
the portal's streaming upload, the import operation pushes it into Spectr's registry (a real
docker-registry with TLS from the Spectr CA and htpasswd), and a Docker-in-Docker test host
(no other image source: no public registry is reachable, nothing loaded into it) is given
deploys the application with spectr.core.deploy_app, which pulls from Spectr's registry.
The host is added through the hosts API and given access (CA trust + docker login) by the
registry context's `registry_access` operation, the part that belongs in bootstrap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from flask import Flask

from agent.tests.registry_process import RegistryProcess, start_registry
from portal.automation import InventoryHost, run_playbook
from portal.core.pki import ca_certificate_pem, issue_server_certificate
from portal.extensions import db
from portal.registry.engine_images import CERTS_DIR
from portal.registry.models import SPECTR, Registry
from tests.registry.docker_images import make_runnable_image, remove_image, save_image
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def bridge_gateway() -> str:
    """This machine's address on Docker's default bridge (docker0): what test hosts reach."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=True
    ).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]


@pytest.fixture
def host() -> Iterator[TestHost]:
    test_host = start_test_host("registry-pull", dind=True)
    yield test_host
    test_host.remove()
    cleanup_key_pair(test_host.key_pair)


@pytest.fixture
def bridged_registry(app: Flask, tmp_path: Path) -> Iterator[RegistryProcess]:
    """Spectr's registry on this machine's bridge address, recorded as Spectr's own."""
    gateway = bridge_gateway()
    cert, key = issue_server_certificate("Spectr registry", [gateway, "127.0.0.1"])
    registry = start_registry(tmp_path / "spectr-registry", cert, key, ca_certificate_pem(),
                              "spectr", "spectr-registry-password", listen=gateway)  # fmt: skip
    db.session.add(Registry(name="spectr", kind=SPECTR, url=registry.url, username="spectr",
                            password="spectr-registry-password", ca_pem=ca_certificate_pem()))  # fmt: skip
    db.session.commit()
    yield registry
    registry.stop()
    shutil.rmtree(CERTS_DIR / registry.address, ignore_errors=True)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    # No skip: without gcc the issue's Done-when test would silently not run.
    assert shutil.which("gcc"), "gcc and a static libc build the tiny runnable image"
    client = docker.from_env()
    reference = make_runnable_image(client, tmp_path)
    path = save_image(client, reference, tmp_path / "service.tar")
    remove_image(client, reference)
    yield reference, path
    remove_image(client, reference)
    client.close()


def connection(host: TestHost) -> InventoryHost:
    return InventoryHost(
        name="testhost", address=host.address, port=host.port, user="root",
        private_key=host.private_key_path.read_text(),
    )  # fmt: skip


def test_host_deploys_an_app_whose_image_came_only_through_spectr_registry(
    app: Flask,
    api_as: Callable,
    bridged_registry: RegistryProcess,
    archive: tuple[str, Path],
    host: TestHost,
) -> None:
    reference, path = archive
    api = api_as("operator")
    with path.open("rb") as body:
        accepted = api.post("/api/v1/registries/spectr/imports", data=body,
                            headers={"Content-Type": "application/x-tar"})  # fmt: skip
    operation = api.get(accepted.headers["Location"]).json
    assert operation["state"] == "succeeded", operation
    image = operation["result"]["images"][0]["reference"]
    assert image == f"{bridged_registry.address}/{reference}"
    with pytest.raises(Exception, match="No such image"):  # the host has never seen it
        host.exec("docker", "image", "inspect", image)

    added = api.post("/api/v1/hosts", json={
        "name": "registry-pull", "address": host.address, "ssh_port": host.port,
        "ssh_user": "root", "ssh_private_key": host.private_key_path.read_text()})  # fmt: skip
    assert added.status_code == 201, added.json
    granted = api.post("/api/v1/registries/spectr/access", json={"host_ids": [added.json["id"]]})
    assert granted.status_code == 202, granted.json
    access = api.get(granted.headers["Location"]).json
    assert access["state"] == "succeeded", access
    assert "spectr-registry-password" not in str(api.get(f"{granted.headers['Location']}/log").json)

    deploy = run_playbook(  # no app_registry_login: the host's stored login is enough
        "spectr.core.deploy_app",
        hosts=[connection(host)],
        extravars={"app_name": "spectr-test-from-registry", "app_image": image,
                   "app_pull": "missing"},
    )  # fmt: skip
    assert deploy.succeeded, deploy.hosts

    state = json.loads(host.exec("docker", "inspect", "spectr-test-from-registry"))[0]
    assert state["State"]["Running"] is True
    pulled = json.loads(host.exec("docker", "image", "inspect", image))[0]
    assert any(d.startswith(f"{bridged_registry.address}/") for d in pulled["RepoDigests"])
    assert "spectr-test-service: running" in host.exec(
        "docker", "logs", "spectr-test-from-registry"
    )
