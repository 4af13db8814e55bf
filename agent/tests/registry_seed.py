"""Put a tiny but valid image into a registry over the HTTP API v2 (no Docker engine needed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import httpx

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def tiny_layer(content: bytes) -> bytes:
    """Return a gzipped tar holding one file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_tiny_image(client: httpx.Client, repository: str, tag: str, content: bytes) -> str:
    """Upload a one-layer image and return its manifest digest."""
    layer = tiny_layer(content)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["cat", "/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]},
        }
    ).encode()
    for blob in (config, layer):
        start = client.post(f"/v2/{repository}/blobs/uploads/")
        start.raise_for_status()
        # The upload location carries its own query (_state); add the digest to it.
        location = httpx.URL(start.headers["location"]).copy_merge_params({"digest": _digest(blob)})
        upload = client.put(location, content=blob)
        upload.raise_for_status()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _digest(layer),
                }
            ],
        }
    ).encode()
    answer = client.put(
        f"/v2/{repository}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": MANIFEST_TYPE},
    )
    answer.raise_for_status()
    return _digest(manifest)


OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
MODEL_ARTIFACT_TYPE = "application/vnd.spectr.model.v1"
MODEL_CONFIG_TYPE = "application/vnd.spectr.model.config.v1+json"
MODEL_FILE_TYPE = "application/vnd.spectr.model.file.v1"
TITLE = "org.opencontainers.image.title"


def upload_blob(client: httpx.Client, repository: str, blob: bytes) -> str:
    """Upload one blob (POST then PUT ?digest=) and return its digest."""
    start = client.post(f"/v2/{repository}/blobs/uploads/")
    start.raise_for_status()
    location = httpx.URL(start.headers["location"]).copy_merge_params({"digest": _digest(blob)})
    client.put(location, content=blob).raise_for_status()
    return _digest(blob)


def model_manifest(files: dict[str, bytes], config: bytes) -> bytes:
    """The OCI manifest of a model (HELPERS-CONTRACT.md): one titled layer per file."""
    layers = [
        {"mediaType": MODEL_FILE_TYPE, "digest": _digest(data), "size": len(data),
         "annotations": {TITLE: path}}
        for path, data in files.items()
    ]  # fmt: skip
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_TYPE,
            "artifactType": MODEL_ARTIFACT_TYPE,
            "config": {
                "mediaType": MODEL_CONFIG_TYPE,
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()


def push_model(client: httpx.Client, repository: str, tag: str, files: dict[str, bytes]) -> str:
    """Push a model as an OCI artifact (the portal's format); return the manifest digest."""
    config = json.dumps(
        {
            "format": "gguf",
            "facts": {},
            "files": [
                {"path": path, "digest": _digest(data), "size": len(data)}
                for path, data in files.items()
            ],
        }
    ).encode()
    for blob in {config, *files.values()}:
        upload_blob(client, repository, blob)
    manifest = model_manifest(files, config)
    answer = client.put(
        f"/v2/{repository}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST_TYPE},
    )
    if answer.status_code != 201:
        raise AssertionError(
            f"the registry refused the model manifest: {answer.status_code} {answer.text}"
        )
    return _digest(manifest)
