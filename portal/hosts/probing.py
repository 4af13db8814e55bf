"""The requests of a health sweep: every agent asked on one asyncio loop over kept TLS connections.

A sweep over ten thousand agents is mostly waiting, and a thread and an httpx client per host
spent more CPU on bookkeeping than on the requests (1.4 s per 1,000 hosts). Here one event loop,
in a thread of its own that outlives the sweeps, keeps one connection per agent open between
sweeps (portal.hosts.tls_stream: asyncio's TLS transport held 300 KB per connection).
Requests are two GETs without a body and the agent answers JSON with a Content-Length,
so the HTTP/1.1 spoken here is that small (chunked and close-delimited bodies are read too);
h11, tried first, spent more of the loop's time on header bookkeeping than on the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from portal.hosts.tls_stream import TlsStream

USER_AGENT = "spectr-portal-health"
MAX_BODY_BYTES = 16 * 1024 * 1024  # a host with thousands of containers lists a few MB
# TLS handshakes in flight at once. A cold sweep opens a connection to every agent; hundreds
# of handshakes at once on a small portal made each wait past its connect timeout (a quarter
# of 1,000 agents "did not answer" on 2 busy cores). Time waiting here is not connect time.
MAX_PARALLEL_CONNECTS = 32


class ProbeFailed(Exception):
    """An agent did not answer a request properly (connection, timeout, protocol)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Connection:
    stream: TlsStream
    host_header: str
    idle_since: float = 0.0

    def close(self) -> None:
        self.stream.close()


class AgentConnections:
    """Kept connections to agents and the loop that drives them, shared by all sweeps.

    `run(coroutines)` is called from a sweep's thread; everything else happens on the loop.
    """

    def __init__(self, tls: ssl.SSLContext, timeout_s: float, keepalive_s: float) -> None:
        self._tls = tls
        self._timeout = timeout_s
        self._connect_timeout = min(3.0, timeout_s)
        self._keepalive = keepalive_s
        self._idle: dict[str, _Connection] = {}
        self._connecting: asyncio.Semaphore | None = None  # made on the loop, at first use
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="agent-probes", daemon=True
        )
        self._thread.start()

    def run(self, work: Callable[[], Any]) -> Any:
        """Run the coroutine `work()` returns on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result()

    async def get(self, base_url: str, path: str, token: str) -> Answer:
        """GET `path` from the agent at `base_url`, on its kept connection when it has one."""
        connection = self._idle.pop(base_url, None)
        if connection is not None and time.monotonic() - connection.idle_since > self._keepalive:
            connection.close()
            connection = None
        if connection is not None:
            try:
                return await self._exchange(base_url, connection, path, token)
            except ProbeFailed:
                pass  # the agent closed the kept connection meanwhile: once more on a new one
        connection = await self._connect(base_url)
        return await self._exchange(base_url, connection, path, token)

    async def _connect(self, base_url: str) -> _Connection:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "", parts.port or 443
        if self._connecting is None:
            self._connecting = asyncio.Semaphore(MAX_PARALLEL_CONNECTS)
        try:
            async with self._connecting:
                stream = await asyncio.wait_for(
                    TlsStream.open(host, port, self._tls), self._connect_timeout
                )
        except TimeoutError:
            raise ProbeFailed(f"connect timed out after {self._connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ProbeFailed(_describe(exc)) from None
        return _Connection(stream, parts.netloc)

    async def _exchange(
        self, base_url: str, connection: _Connection, path: str, token: str
    ) -> Answer:
        try:
            answer, keep = await asyncio.wait_for(
                self._request(connection, path, token), self._timeout
            )
        except TimeoutError:
            connection.close()
            raise ProbeFailed(f"no answer within {self._timeout:g} s") from None
        except (OSError, ssl.SSLError, ValueError, asyncio.IncompleteReadError) as exc:
            connection.close()
            raise ProbeFailed(_describe(exc)) from None
        if keep:
            connection.idle_since = time.monotonic()
            previous = self._idle.pop(base_url, None)
            if previous is not None:
                previous.close()
            self._idle[base_url] = connection
        else:
            connection.close()
        return answer

    async def _request(self, connection: _Connection, path: str, token: str) -> tuple[Answer, bool]:
        if "\r" in token or "\n" in token:
            raise ProbeFailed("the agent token holds a line break")
        connection.stream.write(
            f"GET {path} HTTP/1.1\r\nHost: {connection.host_header}\r\n"
            f"Authorization: Bearer {token}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: application/json\r\n\r\n".encode()
        )
        return await read_response(connection.stream)

    def forget_except(self, base_urls: set[str]) -> None:
        """Close kept connections to agents no longer probed (deleted hosts, new addresses)."""

        async def forget() -> None:
            for url in set(self._idle) - base_urls:
                self._idle.pop(url).close()

        self.run(forget)

    def close(self) -> None:
        """Close every kept connection, then stop and close the loop."""

        async def close_all() -> None:
            for connection in self._idle.values():
                connection.close()
            self._idle.clear()
            await asyncio.sleep(0)  # the transports close on the loop's next turn

        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):  # closing is best effort: the peers may be gone
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def kept(self) -> int:
        return len(self._idle)


async def read_response(reader: TlsStream | asyncio.StreamReader) -> tuple[Answer, bool]:
    """Read one HTTP/1.1 response; return it and whether the connection may be used again.

    Bodies come by Content-Length (the agent's way), chunked, or until the connection closes.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ProbeFailed("response head over the size limit") from None
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ProbeFailed(f"not an HTTP/1.x response: {lines[0][:40]!r}")
    status = int(rest[:3])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    connection = headers.get(b"connection", b"")
    keep = b"close" not in connection and (version == b"HTTP/1.1" or b"keep-alive" in connection)
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        body = await _read_chunked(reader)
    elif b"content-length" in headers:
        length = int(headers[b"content-length"])
        if length > MAX_BODY_BYTES:
            raise ProbeFailed("answer over the size limit")
        body = await reader.readexactly(length)
    else:
        body, keep = await reader.read(MAX_BODY_BYTES + 1), False
        if len(body) > MAX_BODY_BYTES:
            raise ProbeFailed("answer over the size limit")
    return Answer(status, body), keep


async def _read_chunked(reader: TlsStream | asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            return bytes(body)
        body += (await reader.readexactly(size + 2))[:-2]
        if len(body) > MAX_BODY_BYTES:
            raise ProbeFailed("answer over the size limit")


def _describe(exc: BaseException) -> str:
    """What went wrong, without the address: the host is named already, and the same words for
    every host let a sweep record ten thousand refusals with one UPDATE."""
    errno = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and errno:
        return os.strerror(errno)
    return str(exc).strip() or exc.__class__.__name__


async def bounded(coroutines: Sequence[Any], parallel: int) -> list[Any]:
    """Await `coroutines` with at most `parallel` running at once, results in order."""
    gate = asyncio.Semaphore(parallel)

    async def one(coroutine: Any) -> Any:
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))
