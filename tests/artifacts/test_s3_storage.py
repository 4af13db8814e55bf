"""Spectr's registry, and so the model store (models are OCI artifacts in it), on S3-compatible
storage selected by configuration alone: SPECTR_REGISTRY_STORAGE=s3 and the bucket settings
become the collection role's variables (portal/registry/deploy.py storage_vars), the role's own
config template is rendered with them, and a real docker-registry serves from a real S3 API
(moto in server mode on 127.0.0.1, from PyPI). A model imported through the API lands in the
bucket and comes back byte for byte; an image pushed beside it too."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import jinja2
import pytest
from flask import Flask

from agent.tests.registry_process import (
    REGISTRY_BINARY,
    RegistryProcess,
    _wait_until_listening,
    bcrypt_line,
)
from agent.tests.registry_seed import push_tiny_image
from portal.core.operations.kinds import PermanentError
from portal.core.pki import ca_certificate_pem, issue_server_certificate
from portal.extensions import db
from portal.registry.models import SPECTR, Registry

pytestmark = [pytest.mark.slow]

ROLE = Path(__file__).resolve().parents[2] / "ansible_collections/spectr/core/roles/registry"
BUCKET = "spectr-registry"
KEYS = {"access_key": "AKIASPECTRTEST", "secret_key": "moto-accepts-any-secret"}


def upload(api: Any, path: Path, name: str) -> Any:
    """POST the file to the model upload endpoint, as test_import_and_distribute.py does."""
    with path.open("rb") as body:
        return api.post(
            f"/api/v1/models/uploads?name={name}&filename={path.name}&license=mit",
            data=body, headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip


def operation_of(api: Any, accepted: Any) -> dict:
    """The operation an accepted request started (run at once: the queue is immediate here)."""
    assert accepted.status_code == 202, accepted.json
    return api.get(accepted.headers["Location"]).json


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """moto's S3 API in server mode on 127.0.0.1, with the registry's bucket made."""
    port = _free_port()
    with (tmp_path / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=log, cwd=tmp_path,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and server.poll() is None, "moto did not start"
            time.sleep(0.1)
    _s3(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.terminate()
    server.wait(10)


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=KEYS["access_key"], aws_secret_access_key=KEYS["secret_key"],
    )  # fmt: skip


def _objects(endpoint: str) -> list[str]:
    pages = _s3(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def storage_vars(config: dict[str, Any]) -> dict[str, Any]:
    # imported late: the deploy module's imports need every model class mapped first
    from portal.registry.deploy import storage_vars as from_configuration

    return from_configuration(config)


def render_role_config(role_vars: dict[str, Any], config_dir: Path, port: int) -> str:
    """The collection role's config.yml.j2, rendered as the role renders it on a host."""
    # trim_blocks as Ansible's template module sets it
    template = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True
    )
    text = (ROLE / "templates" / "config.yml.j2").read_text()
    return template.from_string(text).render(
        ansible_managed="Ansible managed",
        registry_delete_enabled=True, registry_listen_address="127.0.0.1",
        registry_install_method="package", registry_port=port, registry_drain_timeout="2s",
        _registry_paths={"config": str(config_dir), "storage": str(config_dir / "data")},
        **role_vars,
    )  # fmt: skip


@pytest.fixture
def s3_registry(app: Flask, tmp_path: Path, s3_endpoint: str) -> Iterator[RegistryProcess]:
    """Spectr's registry as deployed with SPECTR_REGISTRY_STORAGE=s3, recorded as Spectr's."""
    app.config.update(
        SPECTR_REGISTRY_STORAGE="s3", SPECTR_REGISTRY_S3_BUCKET=BUCKET,
        SPECTR_REGISTRY_S3_ENDPOINT=s3_endpoint,
        SPECTR_REGISTRY_S3_ACCESS_KEY=KEYS["access_key"],
        SPECTR_REGISTRY_S3_SECRET_KEY=KEYS["secret_key"],
    )  # fmt: skip
    root, port, password = tmp_path / "registry", _free_port(), "s3-registry-password"
    root.mkdir()
    cert, key = issue_server_certificate("Spectr registry", ["127.0.0.1"])
    (root / "tls.crt").write_text(cert + ca_certificate_pem())
    (root / "tls.key").write_text(key)
    (root / "htpasswd").write_text(bcrypt_line("spectr", password) + "\n")
    (root / "config.yml").write_text(render_role_config(storage_vars(app.config), root, port))
    with (root / "registry.log").open("wb") as log:
        # This machine sets AWS_CA_BUNDLE for its own proxy; the registry's AWS SDK refuses a
        # custom bundle with its HTTP transport, and the endpoint here is plain HTTP anyway.
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(root / "config.yml")], stdout=log, stderr=log, env=env
        )
    registry = RegistryProcess(root, "127.0.0.1", port, "spectr", password, ca_certificate_pem(),
                               process)  # fmt: skip
    _wait_until_listening(registry)
    db.session.add(Registry(name="spectr", kind=SPECTR, url=registry.url, username="spectr",
                            password=password, ca_pem=registry.ca_pem))  # fmt: skip
    db.session.commit()
    yield registry
    registry.stop()


def test_storage_is_chosen_by_configuration_alone() -> None:
    assert storage_vars({}) == {"registry_storage": "filesystem"}
    chosen = storage_vars({
        "SPECTR_REGISTRY_STORAGE": "s3", "SPECTR_REGISTRY_S3_BUCKET": "b",
        "SPECTR_REGISTRY_S3_ACCESS_KEY": "a", "SPECTR_REGISTRY_S3_SECRET_KEY": "s",
        "SPECTR_REGISTRY_S3_ENDPOINT": "http://127.0.0.1:9000", "SPECTR_REGISTRY_S3_REGION": "eu",
    })  # fmt: skip
    assert chosen == {"registry_storage": "s3", "registry_s3": {
        "bucket": "b", "access_key": "a", "secret_key": "s",
        "endpoint": "http://127.0.0.1:9000", "region": "eu", "secure": False,
    }}  # fmt: skip
    with pytest.raises(PermanentError, match="SPECTR_REGISTRY_S3_BUCKET, SPECTR_REGISTRY_S3_"):
        storage_vars({"SPECTR_REGISTRY_STORAGE": "s3"})
    with pytest.raises(PermanentError, match="filesystem or s3, not 'nfs'"):
        storage_vars({"SPECTR_REGISTRY_STORAGE": "nfs"})


def test_the_role_config_names_the_bucket_and_no_folder(tmp_path: Path) -> None:
    s3_vars = storage_vars({
        "SPECTR_REGISTRY_STORAGE": "s3", "SPECTR_REGISTRY_S3_BUCKET": "b",
        "SPECTR_REGISTRY_S3_ACCESS_KEY": "a", "SPECTR_REGISTRY_S3_SECRET_KEY": "s",
    })  # fmt: skip
    text = render_role_config(s3_vars, tmp_path, 5000)
    assert "  s3:\n    bucket: b\n    region: us-east-1\n    accesskey: a\n" in text
    assert "regionendpoint" not in text and "filesystem" not in text  # AWS itself
    plain = render_role_config(storage_vars({}), tmp_path, 5000)
    assert f"  filesystem:\n    rootdirectory: {tmp_path}/data\n" in plain and "s3:" not in plain


def test_an_imported_model_and_an_image_are_stored_in_the_bucket(
    api_as: Callable,
    s3_registry: RegistryProcess,
    s3_endpoint: str,
    tiny_model: Callable[..., Path],
) -> None:
    api = api_as("operator")
    gguf = tiny_model(seed=5)
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()

    operation = operation_of(api, upload(api, gguf, "s3-llama"))

    assert operation["state"] == "succeeded", operation["error"]
    keys = _objects(s3_endpoint)
    assert f"docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data" in keys
    assert any(key.startswith("docker/registry/v2/repositories/models/s3-llama/") for key in keys)
    assert not (s3_registry.root / "data").exists()  # nothing on the registry's disk
    with s3_registry.http() as http:
        blob = http.get(f"/v2/models/s3-llama/blobs/sha256:{digest}")
        assert blob.status_code == 200 and blob.content == gguf.read_bytes()
        push_tiny_image(http, "apps/hello", "v1", b"hello from the bucket\n")
    assert any(
        k.startswith("docker/registry/v2/repositories/apps/hello/") for k in _objects(s3_endpoint)
    )
