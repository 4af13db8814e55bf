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
