"""The content-addressed store beside the backups: <instance>/backups/blobs/sha256/<hex>.

Registry blobs and manifests are kept here once, whatever number of backups refer to them, so a
second backup with nothing new copies nothing. A file only appears under its digest after its
sha256 was checked while it was written; a half-written one stays under `partial/` and is
removed by the next garbage collection. One lock file serialises writers and the collector: a
blob a running backup just copied is never collected before that backup's archive lists it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from portal.backup.database import BackupError
from portal.core.errors import Conflict

CHUNK = 1024 * 1024
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class BlobStoreBusy(Conflict):
    code = "backup_busy"


@dataclass(frozen=True)
class Collected:
    removed: int
    bytes_freed: int


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "sha256"
        self.partial = root / "partial"

    def path_of(self, digest: str) -> Path:
        match = DIGEST.match(digest)
        if not match:
            raise BackupError(f"'{digest}' is not a sha256 digest.")
        return self.blobs / match.group(1)

    def has(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob is stored (with the size expected, when one is given)."""
        path = self.path_of(digest)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def write(self, digest: str, chunks: Iterable[bytes]) -> int:
        """Store a blob from chunks, checking its sha256 before it takes its name; its size."""
        target = self.path_of(digest)
        self.partial.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.partial / f"{target.name}.{uuid.uuid4().hex}"
        hasher, size = hashlib.sha256(), 0
        try:
            with temporary.open("xb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    hasher.update(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if "sha256:" + hasher.hexdigest() != digest:
                raise BackupError(
                    f"The registry sent bytes whose sha256 is sha256:{hasher.hexdigest()} "
                    f"for {digest}: not stored."
                )
            temporary.rename(target)
        finally:
            temporary.unlink(missing_ok=True)
        return size

    def read(self, digest: str) -> Iterator[bytes]:
        """Yield a stored blob in chunks, checking its sha256 at the end (before the last one)."""
        path = self.path_of(digest)
        if not path.is_file():
            raise BackupError(f"Blob {digest} is not in the blob store {self.root}.")
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            pending = handle.read(CHUNK)
            while pending:
                following = handle.read(CHUNK)
                hasher.update(pending)
                if not following and "sha256:" + hasher.hexdigest() != digest:
                    # Raised before the last chunk leaves: the upload never completes.
                    raise BackupError(f"Blob {digest} in {self.root} is damaged (sha256 differs).")
                yield pending
                pending = following

    def stored(self) -> Iterator[Path]:
        if self.blobs.is_dir():
            yield from self.blobs.iterdir()

    def collect(self, referenced: set[str]) -> Collected:
        """Remove every blob no digest in `referenced` names, and every partial file."""
        keep = {digest.split(":", 1)[1] for digest in referenced}
        removed = freed = 0
        for path in [*self.stored(), *(self.partial.iterdir() if self.partial.is_dir() else [])]:
            if path.parent == self.blobs and path.name in keep:
                continue
            freed += path.stat().st_size
            path.unlink()
            removed += 1
        return Collected(removed, freed)

    @contextlib.contextmanager
    def locked(self, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold the store's lock (across processes); BlobStoreBusy if it is not free in time."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.root / ".lock").open("a") as handle:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BlobStoreBusy(
                            "Another backup, restore or deletion is using the blob store; "
                            "try again when it is done."
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
