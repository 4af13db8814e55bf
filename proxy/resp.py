"""A minimal pipelined Redis client for the one call on every gateway request.

redis-py's asyncio client spends ~300 µs of wall time per EVALSHA here (connection pool,
command objects, response callbacks); writing RESP by hand on one connection and matching
replies to callers in order takes ~75 µs. Everything off the request path still uses redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any

from redis.asyncio.connection import parse_url

Reply = int | bytes | str | list[Any] | None
Command = tuple[str | bytes | int, ...]


class RespError(Exception):
    """Redis answered with an error reply."""


class RespClient:
    """Send commands on one connection; replies come back in order, so callers queue futures."""

    def __init__(self, url: str) -> None:
        options = parse_url(url)
        self.host = options.get("host", "127.0.0.1")
        self.port = int(options.get("port", 6379))
        self.setup = [
            *(
                [("AUTH", options["username"], options["password"])]
                if options.get("username")
                else [("AUTH", options["password"])]
                if options.get("password")
                else []
            ),
            *([("SELECT", options["db"])] if options.get("db") else []),
        ]
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self._connecting: asyncio.Lock | None = None

    async def call(self, *args: str | bytes | int) -> Reply:
        """Send one command and return its reply; raise RespError or OSError."""
        writer = await self._connection()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        writer.write(encode(args))
        return await future

    async def pipeline(self, commands: list[Command]) -> list[Reply | BaseException]:
        """Send many commands in one write; error replies come back as RespError values."""
        writer = await self._connection()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Reply]] = [loop.create_future() for _ in commands]
        self._waiting.extend(futures)
        writer.write(b"".join(encode(c) for c in commands))
        return list(await asyncio.gather(*futures, return_exceptions=True))  # type: ignore[arg-type]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                reader, writer = await asyncio.open_connection(self.host, self.port)
                for command in self.setup:
                    writer.write(encode(command))
                    if isinstance(await read_reply(reader), RespError):
                        writer.close()
                        raise OSError(f"Redis refused {command[0]}")
                asyncio.get_running_loop().create_task(self._read_replies(reader, writer))
                self._writer = writer
        return self._writer

    async def _read_replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                reply = await read_reply(reader)
                future = self._waiting.popleft()
                if future.done():
                    continue
                if isinstance(reply, RespError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (OSError, asyncio.IncompleteReadError, IndexError) as exc:
            writer.close()
            lost = ConnectionError(f"Redis connection lost: {exc!r}")
            while self._waiting:
                future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(lost)


def encode(args: Command) -> bytes:
    """Encode a command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Reply | RespError:
    """Read one RESP2 reply."""
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode())
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else (await reader.readexactly(size + 2))[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [await read_reply(reader) for _ in range(count)]
    raise OSError(f"unexpected Redis reply {line!r}")
