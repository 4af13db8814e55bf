"""Download one blob from a registry v2 into a locked .partial file, resuming and hashing it."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from agent.model_spec import FetchError, ModelFile, Source

CHUNK = 1024 * 1024  # bytes per write, and per progress event at most
READ = 256 * 1024  # http.client's readinto waits for the whole slice: 0.25 s on slow links
PROGRESS_INTERVAL_S = 0.25
READ_TIMEOUT_S = 60.0


class DigestMismatch(FetchError):
    """The bytes received do not hash to the file's digest."""

    def __init__(self, message: str, fetched: int, resumed: bool) -> None:
        super().__init__(message)
        self.fetched, self.resumed = fetched, resumed


class Progress:
    """Call emit(done) once `step` bytes or `interval` seconds passed since its last call."""

    def __init__(self, emit: Callable[[int], None], step: float, interval: float) -> None:
        self.emit, self.step, self.interval = emit, step, interval
        self.last_done, self.last_time = 0, time.monotonic()

    def update(self, done: int) -> None:
        """Report done bytes when enough bytes or time have passed."""
        now = time.monotonic()
        if done - self.last_done >= self.step or now - self.last_time >= self.interval:
            self.last_done, self.last_time = done, now
            self.emit(done)


def hash_fd(fd: int, length: int, on_progress: Callable[[int], None] | None = None) -> Any:
    """Return a sha256 of the first length bytes of fd, reporting progress every 0.25 s."""
    hasher = hashlib.sha256()
    progress = Progress(on_progress, float("inf"), PROGRESS_INTERVAL_S) if on_progress else None
    done = 0
    while done < length:
        data = os.pread(fd, min(CHUNK, length - done), done)
        if not data:
            break
        hasher.update(data)
        done += len(data)
        if progress:
            progress.update(done)
    return hasher


def _write_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class BlobFetcher:
    """GETs blobs of one repository with basic auth and the source's CA; no proxies."""

    def __init__(self, source: Source) -> None:
        self.source = source
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if source.url.startswith("https:"):
            # with no CA given, the system's trust store (the registry may hold a public cert)
            context = ssl.create_default_context(cadata=source.ca_pem or None)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def _open(self, item: ModelFile, offset: int) -> Any:
        url = f"{self.source.url}/v2/{self.source.repository}/blobs/{item.digest}"
        request = urllib.request.Request(url)
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        if self.source.username is not None:
            pair = f"{self.source.username}:{self.source.password or ''}".encode()
            # unredirected: a redirect to storage (a signed URL) must not carry our password
            request.add_unredirected_header(
                "Authorization", "Basic " + base64.b64encode(pair).decode()
            )
        try:
            return self.opener.open(request, timeout=READ_TIMEOUT_S)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416:
                return None  # the partial is no prefix of this blob: start again
            raise FetchError(
                f"{item.path}: registry answered {error.code} {error.reason} for "
                f"{self.source.repository}@{item.digest}"
            ) from error
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(f"{item.path}: cannot reach {self.source.url}: {error}") from error

    def fetch(
        self, item: ModelFile, fd: int, on_progress: Callable[[int], None]
    ) -> tuple[int, bool]:
        """Complete the partial behind fd and check its digest; return (bytes fetched, resumed)."""
        offset = os.fstat(fd).st_size
        if offset > item.size:
            os.ftruncate(fd, 0)
            offset = 0
        hasher = hash_fd(fd, offset)
        fetched, resumed = 0, False
        if offset < item.size:
            response = self._open(item, offset)
            if response is None:  # 416
                os.ftruncate(fd, 0)
                offset, hasher, response = 0, hashlib.sha256(), self._open(item, 0)
            with response:
                if offset and response.status != 206:  # the server ignored Range: start over
                    os.ftruncate(fd, 0)
                    offset, hasher = 0, hashlib.sha256()
                resumed = offset > 0
                _check_content_range(item, response, offset)
                fetched = self._copy(item, response, fd, offset, hasher, on_progress)
        os.fsync(fd)
        if hasher.hexdigest() != item.hex:
            raise DigestMismatch(
                f"{item.path}: digest mismatch: expected {item.digest}, "
                f"got sha256:{hasher.hexdigest()}" + (" (resumed download)" if resumed else ""),
                fetched,
                resumed,
            )
        return fetched, resumed

    def _copy(self, item: ModelFile, response: Any, fd: int, offset: int, hasher: Any,
              on_progress: Callable[[int], None]) -> int:  # fmt: skip
        """Append the body to fd in 1 MiB writes; return the bytes received."""
        progress = Progress(on_progress, CHUNK, PROGRESS_INTERVAL_S)
        buffer = memoryview(bytearray(CHUNK))  # filled in place: no copy per read
        done, filled = offset, 0
        while done < item.size:
            want = min(READ, item.size - done, CHUNK - filled)
            try:
                # readinto(n), not read1: one TLS record per call costs 3-4x the throughput
                count = response.readinto(buffer[filled : filled + want])
            except (OSError, http.client.HTTPException) as error:
                count, failure = 0, error
            else:
                failure = None
            hasher.update(buffer[filled : filled + count])
            filled += count
            done += count
            if filled and (filled == CHUNK or not count or done >= item.size
                           or time.monotonic() - progress.last_time >= PROGRESS_INTERVAL_S):  # fmt: skip
                _write_all(fd, buffer[:filled], done - filled)
                filled = 0
                progress.update(done)
            if not count:
                reason = f": {failure}" if failure else ""
                raise FetchError(
                    f"{item.path}: transfer ended at {done} of {item.size} bytes{reason}"
                )
        if response.read(1):
            raise FetchError(f"{item.path}: registry sent more than {item.size} bytes")
        if progress.last_done != done:
            on_progress(done)
        return done - offset


def _check_content_range(item: ModelFile, response: Any, offset: int) -> None:
    if response.status != 206:
        return
    content_range = response.headers.get("Content-Range", "")
    if not content_range.startswith(f"bytes {offset}-"):
        raise FetchError(f"{item.path}: asked for bytes {offset}-, got range {content_range!r}")
