"""A TLS client connection on asyncio's plain TCP transport, through ssl.MemoryBIO.

asyncio's own TLS transport gives every connection a 256 KiB read buffer, zero-filled and so
resident: 300 KB for each kept agent connection, 3 GB for 10,000 agents. The health sweep
keeps a connection to every agent, so it drives OpenSSL itself: an SSLObject between two
memory BIOs, fed by a Protocol, read through the three calls the HTTP reader needs (the same
names as asyncio.StreamReader's).
"""

from __future__ import annotations

import asyncio
import ssl

HEAD_LIMIT = 64 * 1024  # an HTTP head longer than this is not an agent's


class TlsStream(asyncio.Protocol):
    """One client connection: handshake, write, and buffered reads of the decrypted bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, host: str, port: int, context: ssl.SSLContext) -> TlsStream:
        """Connect to host:port and complete the TLS handshake (the name checked is `host`)."""
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_connection(lambda: cls(loop), host, port)
        stream._tls = context.wrap_bio(stream._incoming, stream._outgoing, server_hostname=host)
        try:
            await stream._handshake()
        except BaseException:
            stream.close()
            raise
        return stream

    # asyncio.Protocol: what the transport tells us

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        self._wake()

    def eof_received(self) -> bool:
        self._incoming.write_eof()
        self._ended = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()

    # the stream

    def write(self, data: bytes) -> None:
        assert self._tls is not None
        self._tls.write(data)
        self._send()

    async def readuntil(self, separator: bytes) -> bytes:
        start = 0
        while True:
            index = self._buffer.find(separator, start)
            if index >= 0:
                return self._take(index + len(separator))
            if len(self._buffer) > HEAD_LIMIT:
                raise asyncio.LimitOverrunError("separator not found within the limit", 0)
            start = max(0, len(self._buffer) - len(separator) + 1)
            if not await self._decrypt_more():
                raise asyncio.IncompleteReadError(bytes(self._buffer), None)

    async def readexactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not await self._decrypt_more():
                raise asyncio.IncompleteReadError(bytes(self._buffer), count)
        return self._take(count)

    async def read(self, count: int) -> bytes:
        """Up to `count` bytes, reading until the peer ends the stream if need be."""
        while len(self._buffer) < count and await self._decrypt_more():
            pass
        return self._take(min(count, len(self._buffer)))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # inside

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _send(self) -> None:
        data = self._outgoing.read()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more_data(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def _handshake(self) -> None:
        assert self._tls is not None
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                waiting = True
            else:
                waiting = False
            self._send()
            if not waiting:
                return
            if self._ended:
                raise ConnectionResetError("the peer closed the connection in the handshake")
            await self._more_data()

    async def _decrypt_more(self) -> bool:
        """Add decrypted bytes to the buffer; False once the peer has ended the stream."""
        assert self._tls is not None
        while True:
            try:
                chunk = self._tls.read(65536)
            except ssl.SSLWantReadError:
                self._send()
                if self._ended:
                    return False
                await self._more_data()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return False
            if not chunk:
                return False
            self._buffer += chunk
            return True
