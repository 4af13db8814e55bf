"""Imports from internal mirrors: a Hugging Face-compatible endpoint (a stand-in server: no Hub
can be reached here), an S3-compatible service (moto's real S3 server on 127.0.0.1), and another
OCI registry (a real docker-registry). Credentials are encrypted at rest and never shown."""

from __future__ import annotations

import json
import secrets
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from agent.tests.registry_process import RegistryProcess, free_port
from agent.tests.registry_seed import push_model
from portal.extensions import db
from portal.registry.models import Registry
from tests.artifacts.hub_mirror import HubMirror
from tests.artifacts.test_import_and_distribute import operation_of, sha256

pytestmark = [pytest.mark.slow]


def write_safetensors(path: Path, tensors: dict[str, list[int]]) -> Path:
    """A bf16 safetensors file written by hand: header JSON, then zero bytes of data."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        size = 2 * _product(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def _product(shape: list[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def tiny_safetensors_model(folder: Path) -> Path:
    """A two-shard llama-shaped model: config.json, shards, tokenizer (3,072 parameters)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 4096, "torch_dtype": "bfloat16", "vocab_size": 64}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')
    write_safetensors(folder / "model-00001-of-00002.safetensors",
                      {"model.embed_tokens.weight": [64, 16], "model.layers.0.mlp.weight": [32, 16]})  # fmt: skip
    write_safetensors(folder / "model-00002-of-00002.safetensors",
                      {"model.layers.1.mlp.weight": [32, 16], "lm_head.weight": [64, 16]})  # fmt: skip
    return folder


@pytest.fixture
def hub(tiny_model: Callable[..., Path]) -> Iterator[HubMirror]:
    gguf = tiny_model(seed=11)
    (gguf.parent / "README.md").write_text("tiny llama, random weights\n")
    mirror = HubMirror("spectr-test/tiny-llama", gguf.parent, token="hf_" + secrets.token_hex(8))
    yield mirror
    mirror.stop()


def test_import_from_a_hub_mirror_with_a_token_kept_secret(
    app: Flask, api_as: Callable, spectr_registry: Registry, hub: HubMirror
) -> None:
    admin, operator = api_as("admin"), api_as("operator")
    created = admin.post("/api/v1/model-sources", json={
        "name": "hub-mirror", "kind": "huggingface", "url": hub.url, "token": hub.token})  # fmt: skip
    assert created.status_code == 201, created.json
    assert created.json["has_credentials"] and hub.token not in json.dumps(created.json)
    stored = db.session.execute(text("SELECT token FROM model_sources")).scalar()
    assert stored and hub.token not in stored  # encrypted at rest
    body = {"name": "hub-tiny", "huggingface": {"source_id": created.json["id"],
                                                "repository": "spectr-test/tiny-llama"}}  # fmt: skip

    done = operation_of(operator, operator.post("/api/v1/models/imports", json=body))

    assert done["state"] == "succeeded", done["log"]
    assert hub.token not in json.dumps(done)  # not in params, log or result
    [revision] = operator.get(f"/api/v1/models/{done['result']['model_id']}/revisions").json
    gguf = hub.folder / "tiny.gguf"
    assert {f["path"]: f["digest"] for f in revision["files"]} == {
        "README.md": sha256(hub.folder / "README.md"), "tiny.gguf": sha256(gguf)}  # fmt: skip
    assert revision["source"] == {"kind": "huggingface", "source_id": created.json["id"],
                                  "repository": "spectr-test/tiny-llama", "revision": "main"}  # fmt: skip
    assert revision["facts"]["context_length"] == 256
    assert any(path.startswith("/cdn/") for path in hub.requests)  # the redirect was followed


def test_a_hub_mirror_that_refuses_the_token_or_alters_a_file_fails_the_import(
    app: Flask, api_as: Callable, spectr_registry: Registry, hub: HubMirror
) -> None:
    admin = api_as("admin")
    wrong = admin.post("/api/v1/model-sources", json={
        "name": "wrong", "kind": "huggingface", "url": hub.url, "token": "hf_wrong"}).json  # fmt: skip
    body = {"name": "hub-tiny", "huggingface": {"source_id": wrong["id"],
                                                "repository": "spectr-test/tiny-llama"}}  # fmt: skip
    refused = operation_of(admin, admin.post("/api/v1/models/imports", json=body))
    assert refused["state"] == "failed" and "refused the credentials" in refused["error"]

    right = admin.post("/api/v1/model-sources", json={
        "name": "right", "kind": "huggingface", "url": hub.url, "token": hub.token}).json  # fmt: skip
    hub.tampered.add("tiny.gguf")
    body["huggingface"]["source_id"] = right["id"]
    altered = operation_of(admin, admin.post("/api/v1/models/imports", json=body))
    assert altered["state"] == "failed" and "the source says sha256:" in altered["error"]

    s3_as_hub = dict(body, huggingface=None, s3={"source_id": right["id"], "bucket": "models"})
    del s3_as_hub["huggingface"]
    mismatch = admin.post("/api/v1/models/imports", json=s3_as_hub)
    assert mismatch.status_code == 422 and "is a huggingface source" in mismatch.json["message"]
    both = admin.post("/api/v1/models/imports", json={**body, "path": "/tmp"})
    assert both.status_code == 422 and "exactly one of" in json.dumps(both.json)
    node_path = api_as("operator").post(
        "/api/v1/models/imports", json={"name": "x", "path": "/etc"}
    )
    assert node_path.status_code == 403  # reading the node's disk is for admins


@pytest.fixture
def s3_service() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_import_from_an_s3_bucket_reads_safetensors_facts(
    app: Flask, api_as: Callable, spectr_registry: Registry, s3_service: str, tmp_path: Path
) -> None:
    import boto3

    keys = {"access_key": "spectr-test-key", "secret_key": secrets.token_hex(16)}
    s3 = boto3.client("s3", endpoint_url=s3_service, region_name="us-east-1",
                      aws_access_key_id=keys["access_key"], aws_secret_access_key=keys["secret_key"])  # fmt: skip
    s3.create_bucket(Bucket="models")
    folder = tiny_safetensors_model(tmp_path / "tiny-st")
    for path in folder.iterdir():
        s3.upload_file(str(path), "models", f"teams/nlp/tiny-st/{path.name}")
    admin = api_as("admin")
    source = admin.post("/api/v1/model-sources", json={
        "name": "minio", "kind": "s3", "url": s3_service, **keys}).json  # fmt: skip
    assert "secret_key" not in source and source["has_credentials"]
    body = {"name": "s3-tiny", "s3": {"source_id": source["id"], "bucket": "models",
                                      "prefix": "teams/nlp/tiny-st/"}}  # fmt: skip

    done = operation_of(admin, admin.post("/api/v1/models/imports", json=body))

    assert done["state"] == "succeeded", done["log"]
    assert keys["secret_key"] not in json.dumps(done)
    model = admin.get(f"/api/v1/models/{done['result']['model_id']}").json
    assert (model["format"], model["quantization"], model["num_layers"]) == (
        "safetensors",
        "bf16",
        2,
    )
    assert (model["num_kv_heads"], model["head_dim"], model["context_length"]) == (2, 4, 4096)
    [revision] = admin.get(f"/api/v1/models/{model['id']}/revisions").json
    assert (
        revision["facts"]["parameters"] == 3 * 64 * 16 + 0
        or revision["facts"]["parameters"] == 64 * 16 * 2 + 32 * 16 * 2
    )
    assert sorted(f["path"] for f in revision["files"]) == sorted(p.name for p in folder.iterdir())


def test_import_a_model_artifact_from_another_registry(
    app: Flask,
    api_as: Callable,
    spectr_registry: Registry,
    registry_server: RegistryProcess,
    start_test_registry: Callable[..., RegistryProcess],
    tiny_model: Callable[..., Path],
) -> None:
    other = start_test_registry("other-registry", user="bob", password="bob-registry-password")
    gguf = tiny_model(seed=5)
    with other.http() as http:
        digest = push_model(http, "team/tiny", "v1", {"tiny.gguf": gguf.read_bytes()})
    admin = api_as("admin")
    registry = admin.post("/api/v1/registries", json={
        "name": "other", "url": other.url, "username": "bob",
        "password": "bob-registry-password", "ca_pem": other.ca_pem}).json  # fmt: skip
    body = {"name": "mirrored-tiny", "registry": {"registry_id": registry["id"],
                                                  "repository": "team/tiny", "reference": "v1"}}  # fmt: skip

    done = operation_of(admin, admin.post("/api/v1/models/imports", json=body))

    assert done["state"] == "succeeded", done["log"]
    [revision] = admin.get(f"/api/v1/models/{done['result']['model_id']}/revisions").json
    assert revision["files"][0]["digest"] == sha256(gguf)
    assert revision["source"]["reference"] == "v1" and digest.startswith("sha256:")
    with registry_server.http() as http:  # now in Spectr's own registry, as Spectr's artifact
        stored = http.get(f"/v2/models/mirrored-tiny/blobs/{sha256(gguf)}")
        assert stored.status_code == 200 and stored.content == gguf.read_bytes()
