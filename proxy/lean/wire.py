"""One TCP connection as an asyncio protocol: a read buffer the HTTP/1 code parses in place.

asyncio's streams cost a few layers per read and cannot give bytes back; the lean path needs
both speed and the ability to hand a connection, unread bytes included, to mitmproxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Reading pauses while this much is buffered and unread (a client uploading faster than the
# proxy forwards, a replica streaming faster than the client reads).
HIGH_WATER = 1 << 20
# A connection closed with a request body still coming is drained this long, at most this much,
# after its answer (nginx's lingering close): closing a socket with unread data resets it, and a
# reset destroys the answer not yet read in the client's receive buffer.
LINGER_S = 2.0
LINGER_BYTES = 8 << 20


class PeerClosed(ConnectionError):
    """The peer closed (or reset) the connection before the message was complete."""


class Wire(asyncio.Protocol):
    """A connection whose received bytes wait in `buffer` until a reader takes them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False  # nothing more will arrive
        self.closed = False  # the connection is gone (closed here or by the peer)
        # Called once when the peer goes away (a client leaving mid-request, say).
        self.on_lost: Callable[[], None] | None = None
        self._failure: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close: HTTP/1 here has no use for a half-closed connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.closed = True
        self._wake_reader()
        self.resume_writing()
        if self.on_lost is not None:
            lost, self.on_lost = self.on_lost, None
            lost()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)

    # reading

    async def fill(self) -> bool:
        """Wait for more bytes; False when none will come."""
        if self._failure is not None:
            raise self._failure
        if self.eof:
            return False
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._reader = asyncio.get_running_loop().create_future()
        try:
            await self._reader
        finally:
            self._reader = None
        return True

    def take(self, size: int) -> bytes:
        """Remove and return the first `size` buffered bytes."""
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_until(self, separator: bytes, limit: int) -> bytes:
        """Return the bytes up to and including `separator`; PeerClosed or ValueError (limit)."""
        start = 0
        while True:
            end = self.buffer.find(separator, start)
            if end >= 0:
                return self.take(end + len(separator))
            if len(self.buffer) > limit:
                raise ValueError(f"no {separator!r} within {limit} bytes")
            start = max(0, len(self.buffer) - len(separator) + 1)
            if not await self.fill():
                raise PeerClosed("connection closed mid-message")

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self.fill():
                raise PeerClosed("connection closed mid-message")
        return self.take(size)

    async def read_some(self, most: int) -> bytes:
        """Return up to `most` bytes as soon as any are there; b"" at the end of the stream."""
        while not self.buffer:
            if not await self.fill():
                return b""
        return self.take(min(most, len(self.buffer)))

    # writing

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the peer reads slower than we write."""
        if self._writing_paused and not self.closed:
            self._drainer = asyncio.get_running_loop().create_future()
            try:
                await self._drainer
            finally:
                self._drainer = None

    # ending

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def linger_close(self) -> None:
        """Close after an answer sent before the request's body was read: send FIN, then drop
        what the client still sends (LINGER_S, LINGER_BYTES at most), then close."""
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()
        dropped = 0
        try:
            async with asyncio.timeout(LINGER_S):
                while dropped < LINGER_BYTES:
                    dropped += len(self.buffer)
                    self.buffer.clear()
                    if not await self.fill():
                        break
        except (TimeoutError, ConnectionError):
            pass
        self.close()

    def abort(self, failure: BaseException) -> None:
        """Drop the connection; whoever waits to read gets `failure` raised."""
        self._failure = failure
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_exception(failure)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def hand_over(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Give the connection, with the bytes not read yet, to asyncio streams (mitmproxy's)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if self.buffer:
            reader.feed_data(bytes(self.buffer))
            self.buffer.clear()
        if self.eof:
            reader.feed_eof()
        if self._reading_paused:
            self.transport.resume_reading()
        if self._writing_paused:
            protocol.pause_writing()
        return reader, asyncio.StreamWriter(self.transport, protocol, reader, loop)
