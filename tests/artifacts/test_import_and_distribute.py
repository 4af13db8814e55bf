"""Model files into Spectr's registry and onto the Spectr node's cache, through the API.

Real pieces: a docker-registry process with TLS and htpasswd (Spectr's registry), real GGUF
files written with the gguf package, the node's model cache kept by the agent's own code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from agent.tests.registry_process import RegistryProcess
from portal.artifacts.models import ModelRevision
from portal.extensions import db
from portal.hosts.service import ensure_local_host
from portal.registry.models import Registry

pytestmark = [pytest.mark.slow]


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def upload(api, path: Path, name: str, content_type: str = "application/octet-stream", **query):  # type: ignore[no-untyped-def]
    params = "&".join(f"{k}={v}" for k, v in {"name": name, "filename": path.name, **query}.items())
    with path.open("rb") as body:
        return api.post(
            f"/api/v1/models/uploads?{params}", data=body, headers={"Content-Type": content_type}
        )


def operation_of(api, accepted) -> dict:  # type: ignore[no-untyped-def]
    """The operation an accepted request started (run at once: the queue is immediate here)."""
    assert accepted.status_code == 202, accepted.json
    operation = api.get(accepted.headers["Location"]).json
    log = api.get(f"/api/v1/operations/{operation['id']}/log").json
    operation["log"] = [line["message"] for line in log["lines"]]
    assert operation["state"] in ("succeeded", "failed"), "\n".join(operation["log"])
    return operation


def tar_of(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return target


def test_an_uploaded_gguf_becomes_a_catalog_model_stored_as_an_oci_artifact(
    app: Flask,
    api_as: Callable,
    spectr_registry: Registry,
    registry_server: RegistryProcess,
    tiny_model: Callable[..., Path],
) -> None:
    api = api_as("operator")
    gguf = tiny_model()

    operation = operation_of(api, upload(api, gguf, "tiny-llama", license="mit"))

    assert operation["state"] == "succeeded", operation["error"]
    assert operation["result"]["revision"] == 1 and operation["result"]["files_uploaded"] == 1
    model = next(m for m in api.get("/api/v1/models").json if m["name"] == "tiny-llama")
    # Every fact comes from the file: nobody typed them.
    assert (model["format"], model["source_kind"], model["source"]) == (
        "gguf", "registry", "models/tiny-llama"
    )  # fmt: skip
    assert (model["context_length"], model["num_layers"], model["num_kv_heads"]) == (256, 2, 2)
    assert model["head_dim"] == 16 and model["quantization"] == "fp32"
    assert model["license"] == "mit" and model["size_bytes"] == gguf.stat().st_size
    [revision] = api.get(f"/api/v1/models/{model['id']}/revisions").json
    assert revision["files"] == [
        {"path": "tiny.gguf", "digest": sha256(gguf), "size_bytes": gguf.stat().st_size}
    ]
    assert revision["facts"]["architecture"] == "llama"
    with registry_server.http() as http:  # the registry holds it as a model artifact
        answer = http.get(
            "/v2/models/tiny-llama/manifests/r1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        manifest = answer.json()
        assert answer.headers["docker-content-digest"] == revision["manifest_digest"]
        assert manifest["artifactType"] == "application/vnd.spectr.model.v1"
        [layer] = manifest["layers"]
        assert layer["annotations"]["org.opencontainers.image.title"] == "tiny.gguf"
        assert layer["digest"] == sha256(gguf)
        blob = http.get(f"/v2/models/tiny-llama/blobs/{layer['digest']}")
        assert blob.content == gguf.read_bytes()
    assert list(Path(app.instance_path, "uploads").iterdir()) == []  # nothing left behind


def test_the_same_files_again_make_no_revision_and_shared_files_are_not_sent_twice(
    app: Flask,
    api_as: Callable,
    spectr_registry: Registry,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
) -> None:
    api = api_as("operator")
    gguf = tiny_model()
    assert operation_of(api, upload(api, gguf, "tiny"))["state"] == "succeeded"

    again = operation_of(api, upload(api, gguf, "tiny"))
    assert again["result"] == again["result"] | {"unchanged": True, "bytes_uploaded": 0}

    folder = gguf.parent
    (folder / "README.md").write_text("A tiny llama with random weights.\n")
    archive = tar_of(folder, tmp_path / "tiny.tar.gz")
    second = operation_of(api, upload(api, archive, "tiny", content_type="application/gzip"))

    assert second["state"] == "succeeded", second
    result = second["result"]
    assert result["revision"] == 2 and result["files_already_stored"] == 1  # the GGUF
    assert result["bytes_uploaded"] == len("A tiny llama with random weights.\n")
    paths = [f.path for f in db.session.get(ModelRevision, 2).files]
    assert paths == ["README.md", "tiny.gguf"]  # the archive's top folder is dropped


def test_bad_uploads_are_refused_with_what_was_wrong(
    api_as: Callable, spectr_registry: Registry, tiny_model: Callable[..., Path], tmp_path: Path
) -> None:
    api = api_as("operator")
    gguf = tiny_model()

    bad_name = upload(api, gguf, "Tiny Llama")
    assert bad_name.status_code == 422 and "lowercase" in bad_name.json["message"]
    wrong_type = upload(api, gguf, "tiny", content_type="text/plain")
    assert wrong_type.status_code == 415 and "octet-stream" in wrong_type.json["message"]
    assert upload(api_as("viewer"), gguf, "tiny").status_code == 403

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../etc/cron.d/x")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"boom"))
    failed = operation_of(api, upload(api, evil, "evil", content_type="application/x-tar"))
    assert failed["state"] == "failed" and "not a relative path" in failed["error"]

    not_gguf = tmp_path / "fake.gguf"
    not_gguf.write_bytes(b"NOPE" + os.urandom(64))
    failed = operation_of(api, upload(api, not_gguf, "fake"))
    assert failed["state"] == "failed" and "cannot be read" in failed["error"]


def test_import_needs_spectrs_registry(api_as: Callable, tiny_model: Callable[..., Path]) -> None:
    answer = upload(api_as("operator"), tiny_model(), "tiny")
    assert answer.status_code == 409 and "registry is not deployed" in answer.json["message"]


def test_distribute_to_the_spectr_node_verifies_and_repairs_and_removal_is_guarded(
    app: Flask,
    api_as: Callable,
    spectr_registry: Registry,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
) -> None:
    api = api_as("operator")
    gguf = tiny_model()
    operation_of(api, upload(api, gguf, "tiny"))
    model_id = operation_of(api, upload(api, gguf, "tiny"))["result"]["model_id"]
    node = ensure_local_host()

    done = operation_of(
        api, api.post(f"/api/v1/models/{model_id}/distribute", json={"host_ids": [node.id]})
    )

    assert done["state"] == "succeeded", done
    [held] = api.get(f"/api/v1/hosts/{node.id}/models").json
    folder = Path(held["path"])
    assert folder.parent == tmp_path / "node-models" and held["state"] == "present"
    assert (folder / "tiny.gguf").read_bytes() == gguf.read_bytes()
    assert any("tiny.gguf fetched" in line for line in done["log"]), done["log"]

    blob = tmp_path / "node-models" / "blobs" / "sha256" / sha256(gguf).split(":")[1]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))  # the file in the model folder is the same inode
    again = operation_of(
        api, api.post(f"/api/v1/models/{model_id}/distribute", json={"host_ids": [node.id]})
    )
    assert any("tiny.gguf refetched" in line for line in again["log"]), again["log"]
    assert sha256(folder / "tiny.gguf") == sha256(gguf)

    removed = operation_of(api, api.delete(f"/api/v1/models/{model_id}/hosts/{node.id}"))
    assert (
        removed["state"] == "succeeded" and removed["result"]["freed_bytes"] == gguf.stat().st_size
    )
    assert not folder.exists() and api.get(f"/api/v1/hosts/{node.id}/models").json == []


def test_a_host_whose_disk_cannot_hold_the_model_is_refused_before_anything_moves(
    app: Flask, api_as: Callable, spectr_registry: Registry, tiny_model: Callable[..., Path]
) -> None:
    api = api_as("operator")
    model_id = operation_of(api, upload(api, tiny_model(), "tiny"))["result"]["model_id"]
    revision = db.session.get(ModelRevision, 1)
    revision.size_bytes = 2**60  # as if it were an exabyte model
    db.session.commit()
    node = ensure_local_host()

    answer = api.post(f"/api/v1/models/{model_id}/distribute", json={"host_ids": [node.id]})

    assert answer.status_code == 409, answer.json
    assert "bytes free for models" in answer.json["message"]
    assert json.loads(json.dumps(api.get(f"/api/v1/hosts/{node.id}/models").json)) == []


def test_a_model_leaves_the_catalog_only_when_no_host_holds_it_and_its_artifacts_go_too(
    app: Flask,
    api_as: Callable,
    spectr_registry: Registry,
    registry_server: RegistryProcess,
    tiny_model: Callable[..., Path],
) -> None:
    api = api_as("operator")
    done = operation_of(api, upload(api, tiny_model(), "doomed"))
    model_id, digest = done["result"]["model_id"], done["result"]["digest"]
    node = ensure_local_host()
    operation_of(
        api, api.post(f"/api/v1/models/{model_id}/distribute", json={"host_ids": [node.id]})
    )

    refused = api.delete(f"/api/v1/models/{model_id}")
    assert refused.status_code == 409 and "spectr-node" in refused.json["message"]

    operation_of(api, api.delete(f"/api/v1/models/{model_id}/hosts/{node.id}"))
    assert api.delete(f"/api/v1/models/{model_id}").status_code == 204
    with registry_server.http() as http:  # the manifest is gone; GC reclaims the blobs
        assert http.get(f"/v2/models/doomed/manifests/{digest}").status_code == 404
