"""Put small but valid images (single and multi-platform) into a registry over the HTTP API."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import httpx

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CREATED = "2026-01-02T03:04:05Z"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0)


def _upload(client: httpx.Client, repository: str, blob: bytes) -> None:
    start = client.post(f"/v2/{repository}/blobs/uploads/")
    start.raise_for_status()
    location = httpx.URL(start.headers["location"]).copy_merge_params({"digest": digest_of(blob)})
    client.put(location, content=blob).raise_for_status()


def image_parts(content: bytes, arch: str = "amd64") -> tuple[bytes, bytes, bytes]:
    """A one-layer image's config, layer and manifest body, built here (nothing uploaded)."""
    layer = _layer(content)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "created": CREATED,
            "config": {"Cmd": ["cat", "/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(gzip.decompress(layer))]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": digest_of(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": digest_of(layer),
                }
            ],
        }
    ).encode()
    return config, layer, manifest


def image_manifest(
    client: httpx.Client, repository: str, content: bytes, arch: str = "amd64"
) -> bytes:
    """Upload one image's blobs and return its manifest body (not yet tagged)."""
    config, layer, manifest = image_parts(content, arch)
    _upload(client, repository, config)
    _upload(client, repository, layer)
    return manifest


def put_manifest(
    client: httpx.Client, repository: str, reference: str, body: bytes, media_type: str
) -> str:
    answer = client.put(
        f"/v2/{repository}/manifests/{reference}", content=body,
        headers={"Content-Type": media_type},
    )  # fmt: skip
    answer.raise_for_status()
    return digest_of(body)


def push_image(client: httpx.Client, repository: str, tag: str, content: bytes) -> str:
    """Push a one-layer linux/amd64 image; return its manifest digest."""
    body = image_manifest(client, repository, content)
    return put_manifest(client, repository, tag, body, MANIFEST_V2)


def push_multiplatform(client: httpx.Client, repository: str, tag: str) -> str:
    """Push an index of linux/amd64 and linux/arm64 images; return the index digest."""
    entries = []
    for arch in ("amd64", "arm64"):
        body = image_manifest(client, repository, f"built for {arch}".encode(), arch)
        digest = put_manifest(client, repository, digest_of(body), body, MANIFEST_V2)
        entries.append(
            {"mediaType": MANIFEST_V2, "size": len(body), "digest": digest,
             "platform": {"architecture": arch, "os": "linux"}}
        )  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": entries})
    return put_manifest(client, repository, tag, index.encode(), MANIFEST_LIST)
