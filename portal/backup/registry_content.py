"""Copy the content of Spectr's registry into the blob store, and back, over the HTTP API.

Only the Registry HTTP API v2 is used (catalog, tags, manifests, blobs), never the registry's
disk, so the registry may run on another host. A backup lists what it holds in an index:
per repository its tags (tag -> manifest digest), its manifests in the order they can be put
back (an index's children before the index) and the blobs its images refer to. Blobs stream
through 1 MiB chunks with their sha256 checked on the way in and on the way out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from portal.backup.blobstore import BlobStore
from portal.backup.database import BackupError
from portal.registry.client import INDEX_TYPES, RegistryClient
from portal.registry.errors import RegistryNotFound
from portal.registry.manifests import image_blobs, parse_manifest

Log = Callable[[str], None]
Progress = Callable[[float, str], None]


@dataclass
class CopyCounts:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    blobs_reused: int = 0
    bytes_reused: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class RepositoryContent:
    tags: dict[str, str] = field(default_factory=dict)
    manifests: list[dict[str, Any]] = field(default_factory=list)  # children first
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size

    def to_dict(self) -> dict[str, Any]:
        return {"tags": self.tags, "manifests": self.manifests, "blobs": self.blobs}


class MissingBlob(Exception):
    def __init__(self, digest: str) -> None:
        super().__init__(digest)
        self.digest = digest


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


REPORT_EVERY = 256 * 1024 * 1024


def reported(chunks: Iterator[bytes], digest: str, size: int, log: Log) -> Iterator[bytes]:
    """Pass chunks through, logging every 256 MiB of a large blob: long copies show they move."""
    done = next_report = 0
    for chunk in chunks:
        done += len(chunk)
        if done >= next_report + REPORT_EVERY:
            next_report = done - done % REPORT_EVERY
            log(f"{digest[:19]}…: {megabytes(done)} of {megabytes(size)}")
        yield chunk


def referenced_digests(index: dict[str, Any]) -> set[str]:
    """Every blob and manifest digest a backup's registry index refers to."""
    digests: set[str] = set()
    for content in index.get("repositories", {}).values():
        digests.update(content["blobs"])
        digests.update(item["digest"] for item in content["manifests"])
    return digests


class RegistrySaver:
    """Copy every repository of a registry into a blob store; build the backup's index."""

    def __init__(self, client: RegistryClient, store: BlobStore, log: Log, progress: Progress):
        self.client, self.store, self.log, self.progress = client, store, log, progress
        self.counts = CopyCounts()
        self.missing: list[str] = []  # blobs a manifest names that the registry lacks
        self._seen: set[str] = set()  # digests already counted in this backup

    def save(self) -> dict[str, Any]:
        repositories = self._catalog()
        self.log(f"Registry {self.client.url}: {len(repositories)} repositories to save.")
        saved: dict[str, Any] = {}
        for number, repository in enumerate(repositories, 1):
            self.progress(number / max(len(repositories), 1), f"saving {repository}")
            saved[repository] = self._save_repository(repository).to_dict()
        self.counts.repositories = len(saved)
        return {"registry": self.client.url, "repositories": saved, "missing": self.missing}

    def _catalog(self) -> list[str]:
        names: list[str] = []
        last = None
        while True:
            page = self.client.repositories(1000, last)
            names.extend(page.items)
            if not page.next_last:
                return names
            last = page.next_last

    def _save_repository(self, repository: str) -> RepositoryContent:
        content = RepositoryContent()
        copied_before = self.counts.blobs_copied
        for tag in self.client.all_tags(repository):
            try:
                content.tags[tag] = self._save_manifest(repository, tag, content)
            except MissingBlob as exc:
                # A broken image must not keep every other one out of the backup: reported.
                self.missing.append(f"{repository}:{tag} {exc.digest}")
                self.log(f"{repository}:{tag} not saved: blob {exc.digest} is missing there.")
        self.counts.tags += len(content.tags)
        self.log(
            f"{repository}: {len(content.tags)} tag(s), {len(content.manifests)} manifest(s), "
            f"{len(content.blobs)} blob(s) ({megabytes(sum(content.blobs.values()))}); "
            f"{self.counts.blobs_copied - copied_before} blob(s) copied."
        )
        return content

    def _save_manifest(self, repository: str, reference: str, content: RepositoryContent) -> str:
        """Save a manifest after everything it refers to; its digest."""
        media_type, body, digest = self.client.manifest(repository, reference)
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise BackupError(f"{repository}:{reference}: the manifest's sha256 is not {digest}.")
        if any(item["digest"] == digest for item in content.manifests):
            return digest
        manifest = parse_manifest(body)
        if media_type in INDEX_TYPES or "manifests" in manifest:
            for entry in manifest.get("manifests", []):
                self._save_manifest(repository, entry["digest"], content)
        else:
            blobs = image_blobs(manifest)
            for blob, size in blobs:
                self._save_blob(repository, blob, size)
            content.blobs.update(blobs)
        self._keep(digest, len(body), lambda: iter([body]))
        content.manifests.append({"digest": digest, "media_type": media_type, "size": len(body)})
        return digest

    def _save_blob(self, repository: str, digest: str, size: int) -> None:
        def chunks() -> Iterator[bytes]:
            return reported(self.client.stream_blob(repository, digest), digest, size, self.log)

        try:
            if self._keep(digest, size, chunks):
                self.log(f"copied {digest[:19]}… ({megabytes(size)}) from {repository}")
        except RegistryNotFound:
            raise MissingBlob(digest) from None

    def _keep(self, digest: str, size: int, chunks: Callable[[], Iterator[bytes]]) -> bool:
        """Store a blob or manifest unless the store has it; count it once; True if copied."""
        first_time = digest not in self._seen
        self._seen.add(digest)
        if self.store.has(digest, size):
            if first_time:
                self._count(size, copied=False)
            return False
        written = self.store.write(digest, chunks())
        self._count(written, copied=True)
        return True

    def _count(self, size: int, copied: bool) -> None:
        self.counts.blobs += 1
        self.counts.bytes += size
        if copied:
            self.counts.blobs_copied += 1
            self.counts.bytes_copied += size
        else:
            self.counts.blobs_reused += 1
            self.counts.bytes_reused += size


@dataclass
class PushCounts:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class RegistryRestorer:
    """Put a backup's registry content back: blobs, then manifests by digest, then tags."""

    def __init__(self, client: RegistryClient, store: BlobStore, log: Log, progress: Progress):
        self.client, self.store, self.log, self.progress = client, store, log, progress
        self.counts = PushCounts()
        self._uploaded_to: dict[str, str] = {}  # digest -> a repository that now holds it

    def restore(self, index: dict[str, Any]) -> PushCounts:
        repositories = index.get("repositories", {})
        for number, (repository, content) in enumerate(sorted(repositories.items()), 1):
            self.progress(number / max(len(repositories), 1), f"restoring {repository}")
            self._restore_repository(repository, content)
        self.counts.repositories = len(repositories)
        return self.counts

    def _restore_repository(self, repository: str, content: dict[str, Any]) -> None:
        for digest, size in content["blobs"].items():
            self._restore_blob(repository, digest, size)
        for item in content["manifests"]:
            self._put_manifest(repository, item["digest"], item)
        for tag, digest in content["tags"].items():
            item = next(m for m in content["manifests"] if m["digest"] == digest)
            self._put_manifest(repository, tag, item)
        self.counts.manifests += len(content["manifests"])
        self.counts.tags += len(content["tags"])
        self.log(
            f"{repository}: {len(content['tags'])} tag(s), {len(content['manifests'])} "
            f"manifest(s), {len(content['blobs'])} blob(s) in place."
        )

    def _restore_blob(self, repository: str, digest: str, size: int) -> None:
        if self.client.blob_exists(repository, digest):
            self.counts.blobs_present += 1
            return
        source = self._uploaded_to.get(digest)
        # A blob already sent to another repository is mounted: no second upload.
        if source and self.client.mount_blob(repository, digest, source):
            self.counts.blobs_mounted += 1
            return
        chunks = reported(self.store.read(digest), digest, size, self.log)
        self.client.upload_blob(repository, digest, chunks)
        self._uploaded_to.setdefault(digest, repository)
        self.counts.blobs_uploaded += 1
        self.counts.bytes_uploaded += size
        self.log(f"uploaded {digest[:19]}… ({megabytes(size)}) to {repository}")

    def _put_manifest(self, repository: str, reference: str, item: dict[str, Any]) -> None:
        body = b"".join(self.store.read(item["digest"]))  # a manifest: a few KB at most
        self.client.put_manifest(repository, reference, item["media_type"], body)
