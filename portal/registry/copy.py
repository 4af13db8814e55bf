"""Copy an image (or a multi-platform index) from one registry to another over the HTTP API.

Blobs stream from the source straight into the destination's upload, so no blob is held in
memory or on disk; blobs the destination already has are skipped (or mounted, same registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from portal.registry.client import INDEX_TYPES, RegistryClient
from portal.registry.manifests import image_blobs, parse_manifest

Progress = Callable[[int, int, str], None]  # bytes done, bytes total, message


@dataclass
class CopyResult:
    digest: str
    blobs_copied: int
    blobs_skipped: int
    bytes_copied: int


class ImageCopier:
    def __init__(
        self, source: RegistryClient, destination: RegistryClient, progress: Progress | None
    ) -> None:
        self.source = source
        self.destination = destination
        self.progress = progress or (lambda done, total, message: None)
        self.result = CopyResult("", 0, 0, 0)
        self._total = 0
        self._done = 0

    def copy(self, source_repository: str, reference: str, repository: str, tag: str) -> CopyResult:
        """Copy source_repository:reference to repository:tag; return what was moved."""
        media_type, body, digest = self.source.manifest(source_repository, reference)
        images = self._image_manifests(source_repository, media_type, body)
        self._total = sum(size for _, _, blobs in images for _, size in blobs)
        for child_digest, child, blobs in images:
            for blob_digest, size in blobs:
                self._copy_blob(source_repository, repository, blob_digest, size)
            if child_digest:
                self.destination.put_manifest(repository, child_digest, child[0], child[1])
        self.destination.put_manifest(repository, tag, media_type, body)
        self.result.digest = digest
        return self.result

    def _image_manifests(
        self, repository: str, media_type: str, body: bytes
    ) -> list[tuple[str | None, tuple[str, bytes], list[tuple[str, int]]]]:
        manifest = parse_manifest(body)
        if media_type not in INDEX_TYPES and "manifests" not in manifest:
            return [(None, (media_type, body), image_blobs(manifest))]
        images = []
        for entry in manifest["manifests"]:
            child_type, child_body, _ = self.source.manifest(repository, entry["digest"])
            images.append(
                (entry["digest"], (child_type, child_body), image_blobs(parse_manifest(child_body)))
            )
        return images

    def _copy_blob(self, source_repository: str, repository: str, digest: str, size: int) -> None:
        if self.destination.blob_exists(repository, digest):
            self.result.blobs_skipped += 1
            self._advance(size, f"{digest[:19]} already there")
            return
        same_registry = self.source.url == self.destination.url
        if same_registry and self.destination.mount_blob(repository, digest, source_repository):
            self.result.blobs_copied += 1
            self._advance(size, f"{digest[:19]} mounted")
            return
        chunks = self._counted(self.source.stream_blob(source_repository, digest), digest)
        self.destination.upload_blob(repository, digest, chunks)
        self.result.blobs_copied += 1

    def _counted(self, chunks: Iterator[bytes], digest: str) -> Iterator[bytes]:
        for chunk in chunks:
            self.result.bytes_copied += len(chunk)
            self._advance(len(chunk), f"copying {digest[:19]}")
            yield chunk

    def _advance(self, size: int, message: str) -> None:
        self._done += size
        self.progress(self._done, self._total, message)
