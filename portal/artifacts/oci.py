"""A model revision as an OCI artifact in Spectr's registry: one layer per file.

The layout follows what ORAS, KitOps ModelKits and Docker Model Runner do: an OCI image manifest
with an `artifactType`, a small JSON config (format, facts, file list) and one layer per file
whose `org.opencontainers.image.title` annotation is the file's path inside the model folder.
Blobs are content addressed, so a file shared by two models (or two revisions) is stored and
sent once, and the registry's mirror, browse, garbage collection and backup serve models too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal.registry.client import OCI_MANIFEST, RegistryClient

ARTIFACT_TYPE = "application/vnd.spectr.model.v1"
CONFIG_MEDIA_TYPE = "application/vnd.spectr.model.config.v1+json"
FILE_MEDIA_TYPE = "application/vnd.spectr.model.file.v1"
TITLE = "org.opencontainers.image.title"
CHUNK = 1024 * 1024

Progress = Callable[[int, str], None]  # bytes just handled, message


@dataclass(frozen=True)
class StagedFile:
    """A file ready to be stored: its path in the model folder, where it is here, digest, size."""

    path: str
    local: Path
    digest: str
    size: int


@dataclass(frozen=True)
class PushedArtifact:
    digest: str
    bytes_uploaded: int
    files_uploaded: int
    files_present: int


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    """The file's sha256 as `sha256:<hex>`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk), f"hashing {path.name}")
    return "sha256:" + digest.hexdigest()


def manifest_document(files: list[StagedFile], config: bytes) -> dict[str, Any]:
    """The OCI image manifest of a model: its config blob and one layer per file, by path."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": FILE_MEDIA_TYPE,
                "digest": item.digest,
                "size": item.size,
                "annotations": {TITLE: item.path},
            }
            for item in sorted(files, key=lambda f: f.path)
        ],
    }


def config_document(fmt: str, facts: dict[str, Any], files: list[StagedFile]) -> bytes:
    document = {
        "format": fmt,
        "facts": facts,
        "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in files],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def push_model(
    client: RegistryClient,
    repository: str,
    tag: str,
    files: list[StagedFile],
    config: bytes,
    progress: Progress,
) -> PushedArtifact:
    """Upload the blobs the registry lacks, then the config and the manifest under `tag`."""
    uploaded = present = sent = 0
    for item in files:
        if client.blob_exists(repository, item.digest):
            present += 1
            progress(item.size, f"{item.path}: already in the registry")
            continue
        client.upload_blob(repository, item.digest, _chunks(item.local, progress, item.path))
        uploaded, sent = uploaded + 1, sent + item.size
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    if not client.blob_exists(repository, config_digest):
        client.upload_blob(repository, config_digest, iter([config]))
    body = json.dumps(manifest_document(files, config), separators=(",", ":")).encode()
    client.put_manifest(repository, tag, OCI_MANIFEST, body)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return PushedArtifact(digest, sent, uploaded, present)


def _chunks(path: Path, progress: Progress, name: str) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            progress(len(chunk), f"uploading {name}")
            yield chunk


def files_of_manifest(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The (path, digest, size) of each file layer of a model manifest."""
    return [
        {"path": layer["annotations"][TITLE], "digest": layer["digest"], "size": layer["size"]}
        for layer in manifest.get("layers", [])
        if layer.get("mediaType") == FILE_MEDIA_TYPE and TITLE in (layer.get("annotations") or {})
    ]
