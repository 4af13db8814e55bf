"""The host's model cache: verified blobs, hard-linked model folders, manifests written last.

Stdlib only (the agent needs Python 3.9+ and nothing else; the portal imports this for its own
node). The on-disk layout is a contract shared with the collection's module:
/work/HELPERS-CONTRACT.md, "Host model cache layout".
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.model_fetch import BlobFetcher, DigestMismatch, hash_fd
from agent.model_spec import (
    FetchError,
    ModelCacheError,
    ModelFile,
    ModelSpec,
    NotEnoughSpace,
    NotFound,
    SpecError,
    check_digest,
    parse_spec,
)

__all__ = [
    "FetchError", "ModelCache", "ModelCacheError", "NotEnoughSpace", "NotFound", "SpecError",
    "parse_spec",
]  # fmt: skip

log = logging.getLogger(__name__)

RESERVE_BYTES = 256 * 1024 * 1024  # left free so a full cache does not also stop the host
PARALLEL_FETCHES = 4  # files of one model fetched at the same time
Event = Callable[[dict[str, Any]], None]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_counting(path: Path) -> int:
    """Unlink a file; return its size when that was its last link (bytes really freed)."""
    try:
        info = path.lstat()
        path.unlink()
    except FileNotFoundError:
        return 0
    return info.st_size if info.st_nlink == 1 else 0


class ModelCache:
    """Pull, list and remove models under one root folder."""

    def __init__(self, root: Path | str, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.root = Path(root)
        self.reserve_bytes = reserve_bytes
        self.blobs = self.root / "blobs" / "sha256"
        self.manifests = self.root / "manifests"
        self._lock = threading.Lock()  # links, manifests and removals of this process
        self._active: Counter[str] = Counter()  # blob hex a running pull needs

    def ensure(self) -> None:
        """Create the root, blobs and manifests folders when missing."""
        for folder in (self.root, self.blobs, self.manifests):
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)

    def free_bytes(self) -> int:
        """Return the free bytes of the root's filesystem."""
        return shutil.disk_usage(self.root).free

    def blob_path(self, digest: str) -> Path:
        """Return where the complete blob of a digest lives."""
        return self.blobs / digest.split(":", 1)[1]

    def model_path(self, digest: str) -> Path:
        """Return the folder runtimes mount for a model digest."""
        return self.root / f"sha256-{digest.split(':', 1)[1]}"

    def _manifest_path(self, digest: str) -> Path:
        return self.manifests / f"sha256-{digest.split(':', 1)[1]}.json"

    # -- pull ---------------------------------------------------------------------------------

    def sizes(self, spec: ModelSpec | dict[str, Any]) -> tuple[int, int]:
        """Return (bytes of the model's distinct blobs, bytes already in blobs or partials)."""
        spec = parse_spec(spec)
        total = present = 0
        for item in {item.digest: item for item in spec.files}.values():
            total += item.size
            blob = self.blob_path(item.digest)
            partial = blob.with_name(blob.name + ".partial")
            if blob.is_file() and blob.stat().st_size == item.size:
                present += item.size
            elif partial.is_file():
                present += min(partial.stat().st_size, item.size)
        return total, present

    def check_space(self, spec: ModelSpec | dict[str, Any]) -> int:
        """Return the bytes a pull still needs; raise NotEnoughSpace when they do not fit."""
        total, present = self.sizes(spec)
        missing = total - present
        free = self.free_bytes()
        if missing and missing + self.reserve_bytes > free:
            raise NotEnoughSpace(missing, free, str(self.root), self.reserve_bytes)
        return missing

    def pull(self, spec: ModelSpec | dict[str, Any], on_event: Event | None = None) -> dict:
        """Make the model complete in the cache, fetching only what is missing; return done."""
        spec = parse_spec(spec)
        emit = on_event if on_event is not None else (lambda event: None)
        started = time.monotonic()
        self.ensure()
        total, present = self.sizes(spec)
        self.check_space(spec)
        emit({"event": "start", "bytes_total": total, "bytes_present": present,
              "files": len(spec.files)})  # fmt: skip
        self._hold(spec, +1)
        try:
            fetched = self._ensure_blobs(spec, emit)
            with self._lock:
                self._link(spec)
                self._write_manifest(spec)
        finally:
            self._hold(spec, -1)
        done = {"event": "done", "path": str(self.model_path(spec.digest)),
                "bytes_fetched": fetched, "seconds": round(time.monotonic() - started, 3)}  # fmt: skip
        emit(done)
        return done

    def _ensure_blobs(self, spec: ModelSpec, emit: Event) -> int:
        """Complete every blob, PARALLEL_FETCHES at a time; return the bytes fetched.

        One TLS stream with its hashing and writing keeps about one core busy; a sharded model
        fetched a few files at a time fills the link instead (the work releases the GIL).
        """
        fetcher = BlobFetcher(spec.source)
        emit_lock = threading.Lock()

        def locked(event: dict[str, Any]) -> None:
            with emit_lock:
                emit(event)

        unique = list({item.digest: item for item in spec.files}.values())
        fetched, errors = 0, []
        with ThreadPoolExecutor(max(1, min(PARALLEL_FETCHES, len(unique)))) as pool:
            futures = {
                pool.submit(self._ensure_blob, fetcher, item, spec.verify, locked): item
                for item in unique
            }
            for future in as_completed(futures):
                try:
                    status, count = future.result()
                except ModelCacheError as error:
                    errors.append(error)  # the others finish: their files need not come again
                    continue
                fetched += count
                locked({"event": "file", "path": futures[future].path, "status": status,
                        "bytes_fetched": count})  # fmt: skip
        if errors:
            raise errors[0]
        listed_twice = [item for item in spec.files if item not in unique]
        for item in listed_twice:  # a blob listed under two paths was fetched once
            locked({"event": "file", "path": item.path, "status": "present", "bytes_fetched": 0})
        return fetched

    def _hold(self, spec: ModelSpec, step: int) -> None:
        with self._lock:
            for item in spec.files:
                self._active[item.digest] += step
            self._active += Counter()  # drops counts that reached zero

    def _ensure_blob(self, fetcher: BlobFetcher, item: ModelFile, verify: bool,
                     emit: Event) -> tuple[str, int]:  # fmt: skip
        """Return (status, bytes fetched) once the file's blob is complete and verified."""

        def progress(phase: str) -> Callable[[int], None]:
            return lambda done: emit({"event": "progress", "path": item.path, "phase": phase,
                                      "bytes_done": done, "bytes_total": item.size})  # fmt: skip

        blob = self.blob_path(item.digest)
        corrupt = False
        if blob.is_file():
            if self._blob_ok(blob, item, verify, progress("verify")):
                return "present", 0
            log.warning("blob %s is corrupt; fetching it again", item.digest)
            blob.unlink()
            corrupt = True
        outcome = self._download(fetcher, item, progress("fetch"))
        if outcome is None:  # another pull completed it meanwhile
            return "present", 0
        fetched, resumed = outcome
        return ("refetched" if corrupt else "resumed" if resumed else "fetched"), fetched

    def _blob_ok(self, blob: Path, item: ModelFile, verify: bool,
                 on_progress: Callable[[int], None]) -> bool:  # fmt: skip
        fd = os.open(blob, os.O_RDONLY)
        try:
            if os.fstat(fd).st_size != item.size:
                return False
            return not verify or hash_fd(fd, item.size, on_progress).hexdigest() == item.hex
        finally:
            os.close(fd)

    def _download(self, fetcher: BlobFetcher, item: ModelFile,
                  on_progress: Callable[[int], None]) -> tuple[int, bool] | None:  # fmt: skip
        """Complete the blob through its .partial under an flock; None if another pull did."""
        blob = self.blob_path(item.digest)
        partial = blob.with_name(blob.name + ".partial")
        while True:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another pull fills this partial
                ours = _same_file(fd, partial)
                if blob.is_file():
                    if ours:
                        partial.unlink()
                    return None
                if not ours:  # renamed or deleted while we waited: open the current one
                    continue
                try:
                    return self._fill(fetcher, item, fd, partial, blob, on_progress)
                except FetchError:
                    if partial.exists() and not os.fstat(fd).st_size:
                        partial.unlink()  # nothing to resume: leave no empty file behind
                    raise
            finally:
                os.close(fd)  # releases the flock

    def _fill(self, fetcher: BlobFetcher, item: ModelFile, fd: int, partial: Path, blob: Path,
              on_progress: Callable[[int], None]) -> tuple[int, bool]:  # fmt: skip
        fetched = 0
        try:
            count, resumed = fetcher.fetch(item, fd, on_progress)
        except DigestMismatch as mismatch:
            if not mismatch.resumed:
                partial.unlink()
                raise
            log.warning("%s; fetching it again from the start", mismatch)
            os.ftruncate(fd, 0)  # the kept bytes were wrong: one more try from zero
            fetched = mismatch.fetched
            try:
                count, resumed = fetcher.fetch(item, fd, on_progress)
            except DigestMismatch:
                partial.unlink()
                raise
        os.fchmod(fd, 0o644)
        os.replace(partial, blob)
        _fsync_dir(self.blobs)
        return fetched + count, resumed

    def _link(self, spec: ModelSpec) -> None:
        """Hard-link every file into the model folder, replacing wrong entries."""
        folder = self.model_path(spec.digest)
        for item in spec.files:
            blob, target = self.blob_path(item.digest), folder / item.path
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            try:
                if os.path.samefile(blob, target):
                    continue
            except FileNotFoundError:
                pass
            temporary = target.with_name(f".{target.name}.{os.getpid()}.link")
            temporary.unlink(missing_ok=True)
            os.link(blob, temporary)
            os.replace(temporary, target)

    def _write_manifest(self, spec: ModelSpec) -> None:
        document = {
            "digest": spec.digest,
            "name": spec.name,
            "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in spec.files],
            "pulled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - 3.9
        }
        target = self._manifest_path(spec.digest)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
        _fsync_dir(self.manifests)

    # -- list, get, remove --------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        """Return the complete models (those with a manifest), oldest digest first."""
        if not self.manifests.is_dir():
            return []
        documents = (_read_manifest(path) for path in sorted(self.manifests.glob("sha256-*.json")))
        return [self._summary(document) for document in documents if document]

    def get(self, digest: str) -> dict[str, Any]:
        """Return one complete model, or raise NotFound."""
        document = _read_manifest(self._manifest_path(check_digest(digest)))
        if document is None:
            raise NotFound(f"no model {digest} in {self.root}")
        return self._summary(document)

    def _summary(self, document: dict[str, Any]) -> dict[str, Any]:
        size = sum(item["size"] for item in document["files"])
        return {**document, "size_bytes": size, "path": str(self.model_path(document["digest"]))}

    def remove(self, digest: str) -> int:
        """Delete a model's manifest, folder and the blobs no other model uses; return bytes freed."""
        manifest = self._manifest_path(check_digest(digest))
        folder = self.model_path(digest)
        with self._lock:
            document = _read_manifest(manifest)
            if document is None and not folder.is_dir():
                raise NotFound(f"no model {digest} in {self.root}")
            mine = {item["digest"] for item in document["files"]} if document else set()
            mine |= self._blobs_linked_from(folder)
            others = {
                item["digest"]
                for path in self.manifests.glob("sha256-*.json")
                if path != manifest
                for item in (_read_manifest(path) or {"files": []})["files"]
            }
            manifest.unlink(missing_ok=True)  # first: the model stops being complete
            _fsync_dir(self.manifests)
            freed = _remove_tree(folder)
            for blob_digest in sorted(mine - others - set(self._active)):
                freed += _unlink_counting(self.blob_path(blob_digest))
        return freed

    def _blobs_linked_from(self, folder: Path) -> set[str]:
        """Return digests of blobs that share an inode with a file of the folder."""
        if not folder.is_dir() or not self.blobs.is_dir():
            return set()
        inodes = {_inode(path) for path in folder.rglob("*") if path.is_file()}
        return {
            f"sha256:{blob.name}"
            for blob in self.blobs.iterdir()
            if not blob.name.endswith(".partial") and _inode(blob) in inodes
        }


def _inode(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def _same_file(fd: int, path: Path) -> bool:
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (info.st_dev, info.st_ino) == (mine.st_dev, mine.st_ino)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        check_digest(document["digest"])
        if not all({"path", "digest", "size"} <= set(item) for item in document["files"]):
            raise ValueError("a file lacks path, digest or size")
        return document
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring unreadable model manifest %s: %s", path, error)
        return None


def _remove_tree(folder: Path) -> int:
    """Delete a model folder; return the bytes of files that were their inode's last link."""
    if not folder.is_dir():
        return 0
    freed = 0
    for parent, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            freed += _unlink_counting(Path(parent) / name)
        for name in dirs:
            path = Path(parent) / name
            if path.is_symlink():
                path.unlink()
            else:
                path.rmdir()
    folder.rmdir()
    return freed
