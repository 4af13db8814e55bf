"""A first-in first-out queue of usage entries: in memory up to a count, then in a file on disk."""

from __future__ import annotations

import collections
import fcntl
import itertools
import logging
import os
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

READ_BLOCK = 1 << 20


class SpoolLocked(RuntimeError):
    """Another process holds the spool file."""


class UsageQueue:
    """Hold entries (one JSON line each) oldest first: a bounded deque, then an append-only file.

    Once anything is on disk, new entries go there too, so the file always holds the newest
    entries and order is kept. Entries leave only when `pop` confirms them, so a batch that
    failed is sent again, unchanged. The file survives a restart and is read again from its start.
    """

    def __init__(self, path: Path, max_memory: int, max_disk_bytes: int) -> None:
        self.path = path
        self.max_memory = max_memory
        self.max_disk_bytes = max_disk_bytes
        self.dropped = 0
        self._memory: collections.deque[bytes] = collections.deque()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(path.with_name(path.name + ".lock"))
        self._file = open(path, "a+b")  # noqa: SIM115 (held for the queue's life)
        self._read_at = 0
        self._peeked_bytes = 0
        self._size = self._file.seek(0, os.SEEK_END)
        self.disk_count = self._count_lines() if self._size else 0
        if self.disk_count:
            logger.warning(
                "%d usage records left on disk in %s are sent again", self.disk_count, path
            )

    @property
    def memory_count(self) -> int:
        return len(self._memory)

    def __len__(self) -> int:
        return len(self._memory) + self.disk_count

    def put(self, entry: bytes) -> None:
        """Queue one entry (a JSON document without newlines)."""
        if self.disk_count or len(self._memory) >= self.max_memory:
            self._append([entry])
        else:
            self._memory.append(entry)

    def peek(self, limit: int) -> list[bytes]:
        """Return up to `limit` of the oldest entries, leaving them queued."""
        if self._memory:
            self._peeked_bytes = 0
            return list(itertools.islice(self._memory, limit))
        if not self.disk_count:
            return []
        self._file.seek(self._read_at)
        data = self._file.read(READ_BLOCK)
        while b"\n" not in data and self._file.tell() < self._size:
            data += self._file.read(READ_BLOCK)  # one entry longer than a block
        lines = data.split(b"\n")[:-1][:limit]
        self._peeked_bytes = sum(len(line) + 1 for line in lines)
        return lines

    def pop(self, count: int) -> None:
        """Forget the `count` entries the last `peek` returned: they reached Redis."""
        if self._memory:
            for _ in range(count):
                self._memory.popleft()
            return
        self._read_at += self._peeked_bytes
        self.disk_count -= count
        self._peeked_bytes = 0
        if self.disk_count == 0:
            self._file.truncate(0)  # all sent: the file starts over, empty
            self._read_at = self._size = 0

    def spill(self) -> None:
        """Move what waits in memory to disk, ahead of what is there (Redis is away)."""
        if not self._memory:
            return
        entries = list(self._memory)
        self._memory.clear()
        if not self.disk_count:
            self._append(entries)
            return
        # Rarely taken (memory full and Redis lost together): rewrite, memory first.
        self._file.seek(self._read_at)
        rest = self._file.read()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(b"".join(entry + b"\n" for entry in entries) + rest)
        os.replace(tmp, self.path)
        self._file.close()
        self._file = open(self.path, "a+b")  # noqa: SIM115 (held for the queue's life)
        self._read_at, self._size = 0, self._file.seek(0, os.SEEK_END)
        self.disk_count += len(entries)

    def close(self) -> None:
        self._file.close()
        self._lock.close()

    def _append(self, entries: list[bytes]) -> None:
        data = b"".join(entry + b"\n" for entry in entries)
        if self._size + len(data) > self.max_disk_bytes:
            self.dropped += len(entries)
            logger.error("usage spool %s is full: %d records dropped", self.path, len(entries))
            return
        self._file.write(data)
        self._file.flush()  # in the kernel's hands: a killed proxy loses nothing
        self._size += len(data)
        self.disk_count += len(entries)

    def _count_lines(self) -> int:
        self._file.seek(0)
        return sum(block.count(b"\n") for block in iter(lambda: self._file.read(READ_BLOCK), b""))


def _lock(path: Path) -> BinaryIO:
    """Hold an exclusive lock on a file next to the spool, so two proxies never share one."""
    handle = open(path, "a+b")  # noqa: SIM115 (the lock lasts as long as it is open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SpoolLocked(f"{path}: another spectr-proxy uses this usage spool") from None
    return handle
