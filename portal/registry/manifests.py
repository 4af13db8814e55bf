"""Read what a manifest says: digest, size, created, platforms, and the blobs it refers to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portal.registry.client import INDEX_TYPES, RegistryClient
from portal.registry.errors import RegistryAnswerError


@dataclass
class ManifestSummary:
    repository: str
    reference: str
    digest: str
    media_type: str
    size: int  # bytes of config and layers (of every platform, for an index)
    created: str | None
    platforms: list[str] = field(default_factory=list)
    layers: int = 0


def parse_manifest(body: bytes) -> dict[str, Any]:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise RegistryAnswerError("The registry returned a manifest that is not JSON.") from exc


def image_blobs(manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """(digest, size) of the config and layers of an image manifest, config first."""
    blobs = []
    if manifest.get("config"):
        blobs.append((manifest["config"]["digest"], int(manifest["config"].get("size", 0))))
    blobs += [(layer["digest"], int(layer.get("size", 0))) for layer in manifest.get("layers", [])]
    return blobs


def summarise(client: RegistryClient, repository: str, reference: str) -> ManifestSummary:
    """Describe one tag or digest; for an index, every platform's image is read."""
    media_type, body, digest = client.manifest(repository, reference)
    manifest = parse_manifest(body)
    summary = ManifestSummary(repository, reference, digest, media_type, 0, None)
    if media_type in INDEX_TYPES or "manifests" in manifest:
        for entry in manifest.get("manifests", []):
            platform = entry.get("platform") or {}
            if platform.get("os") == "unknown":  # attestation manifests, not runnable images
                continue
            summary.platforms.append(_platform_name(platform))
            _add_image(client, repository, entry["digest"], summary)
        return summary
    _add_image(client, repository, digest, summary, manifest)
    return summary


def _add_image(
    client: RegistryClient,
    repository: str,
    digest: str,
    summary: ManifestSummary,
    manifest: dict[str, Any] | None = None,
) -> None:
    if manifest is None:
        manifest = parse_manifest(client.manifest(repository, digest)[1])
    blobs = image_blobs(manifest)
    summary.size += sum(size for _, size in blobs)
    summary.layers = max(summary.layers, len(manifest.get("layers", [])))
    if not manifest.get("config"):
        return
    config = client.blob_json(repository, manifest["config"]["digest"])
    summary.created = summary.created or config.get("created")
    if not summary.platforms or summary.media_type not in INDEX_TYPES:
        name = _platform_name(config)
        if name not in summary.platforms:
            summary.platforms.append(name)


def _platform_name(platform: dict[str, Any]) -> str:
    parts = [platform.get("os", "?"), platform.get("architecture", "?")]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)
