"""The backups' blob store on real files: digests checked both ways, one holder at a time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portal.backup.blobstore import BlobStore, BlobStoreBusy
from portal.backup.database import BackupError


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_blob_is_stored_under_its_digest_only_when_the_bytes_match(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    good = b"layer bytes" * 1000
    assert store.write(digest(good), iter([good[:5000], good[5000:]])) == len(good)
    assert store.has(digest(good), len(good)) and not store.has(digest(good), 1)
    assert b"".join(store.read(digest(good))) == good

    with pytest.raises(BackupError, match="whose sha256 is"):
        store.write(digest(b"what was announced"), iter([b"what came"]))
    assert not store.has(digest(b"what was announced"))
    assert list((tmp_path / "blobs" / "partial").iterdir()) == []  # nothing half-written left


def test_a_damaged_blob_is_refused_before_its_last_chunk_leaves(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"x" * (3 * 1024 * 1024)  # three chunks
    store.write(digest(data), iter([data]))
    store.path_of(digest(data)).write_bytes(b"y" + data[1:])  # bit rot on the backup disk
    sent = []
    with pytest.raises(BackupError, match="is damaged"):
        for chunk in store.read(digest(data)):
            sent.append(chunk)
    assert len(sent) == 2  # the upload it feeds never completes


def test_collection_keeps_referenced_blobs_and_removes_the_rest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    kept, dropped = b"still referenced", b"no backup refers to this"
    for data in (kept, dropped):
        store.write(digest(data), iter([data]))
    (tmp_path / "blobs" / "partial" / "left-by-a-crash").write_bytes(b"half")
    collected = store.collect({digest(kept)})
    assert (collected.removed, collected.bytes_freed) == (2, len(dropped) + 4)
    assert store.has(digest(kept)) and not store.has(digest(dropped))


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    other = BlobStore(tmp_path / "blobs")  # another process's view of the same folder
    with store.locked(), pytest.raises(BlobStoreBusy, match="Another backup"), other.locked(0.3):
        pass
    with store.locked():  # free again
        pass
