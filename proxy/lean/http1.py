"""A small, strict HTTP/1.1 reader and writer for the lean gateway path.

Requests are parsed strictly: anything unusual (another HTTP version, an absolute or `*`
target, an upgrade, obsolete line folding, a doubtful body length) is not refused here but
left to mitmproxy, which gets the whole connection. So this parser only has to be right for
plain requests, and a request it cannot vouch for gets mitmproxy's complete handling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.lean.wire import PeerClosed, Wire

MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
# Whole bodies are sent with Content-Length, streams chunked: the connection-level headers of
# either side never cross the proxy.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)
HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00\r\n]*?)[ \t]*")
METHOD = re.compile(rb"[A-Z]{1,20}")
NO_BODY_STATUS = frozenset({204, 304})


class ProtocolError(ValueError):
    """A message that is not valid HTTP/1."""


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    fields: list[tuple[bytes, bytes]]
    host: str
    length: int  # of the body, when not chunked
    chunked: bool
    keep_alive: bool
    expect_continue: bool


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    fields: list[tuple[bytes, bytes]]
    length: int | None  # None: chunked, or read until the connection closes
    chunked: bool
    keep_alive: bool


def parse_request_head(head: bytes) -> RequestHead | None:
    """Read a request head (ending in CRLF CRLF); None when mitmproxy should handle it."""
    request_line, *lines = head[:-4].split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or parts[1][:1] != b"/":
        return None
    method, target, _ = parts
    if not METHOD.fullmatch(method) or method == b"CONNECT":
        return None
    fields: list[tuple[bytes, bytes]] = []
    host: bytes | None = None
    length: int | None = None
    chunked = expect_continue = False
    keep_alive = True
    for line in lines:
        match = HEADER_LINE.fullmatch(line)
        if match is None:
            return None  # obsolete folding, a bad name or value
        name, value = match.groups()
        lower = name.lower()
        if lower == b"host":
            if host is not None:
                return None
            host = value
        elif lower == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif lower == b"transfer-encoding":
            if chunked or value.lower() != b"chunked":
                return None
            chunked = True
        elif lower == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            if b"upgrade" in tokens:
                return None
            keep_alive = b"close" not in tokens
        elif lower == b"upgrade":
            return None
        elif lower == b"expect":
            if value.lower() != b"100-continue":
                return None
            expect_continue = True
            continue  # answered here, as mitmproxy does, and not sent on
        fields.append((name, value))
    if not host or (chunked and length is not None):
        return None
    return RequestHead(
        method,
        target,
        fields,
        host.decode("latin-1"),
        length or 0,
        chunked,
        keep_alive,
        expect_continue,
    )


def parse_response_head(head: bytes) -> ResponseHead:
    """Read a response head (ending in CRLF CRLF); ProtocolError when it is not one."""
    status_line, *lines = head[:-4].split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    fields: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    keep_alive = version == b"HTTP/1.1"
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name[-1:] in b" \t":
            raise ProtocolError(f"bad header line {line[:80]!r}")
        value = value.strip(b" \t")
        lower = name.lower()
        if lower == b"content-length":
            if not value.isdigit() or (length is not None and length != int(value)):
                raise ProtocolError(f"bad content-length {value[:40]!r}")
            length = int(value)
        elif lower == b"transfer-encoding":
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif lower == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            keep_alive = (keep_alive or b"keep-alive" in tokens) and b"close" not in tokens
        fields.append((name, value))
    if chunked:
        length = None
    elif length is None:
        keep_alive = False  # the body ends when the connection does
    return ResponseHead(int(code), reason, fields, length, chunked, keep_alive)


async def read_response_head(wire: Wire) -> ResponseHead:
    """Read the head of the final answer (interim 1xx answers are skipped)."""
    while True:
        head = parse_response_head(await wire.read_until(b"\r\n\r\n", MAX_HEAD))
        if head.status >= 200 or head.status == 101:
            return head


class BodyTooLarge(Exception):
    """A chunked request body grew past the limit while it was read."""


async def read_request_body(wire: Wire, head: RequestHead, limit: int) -> bytes:
    """Read a request's whole body (the gateway needs it before choosing a replica), at most
    `limit` bytes: a longer chunked body raises BodyTooLarge once it passes it (a declared
    length is checked before this is called)."""
    if head.expect_continue:
        wire.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if head.chunked:
        reader = ChunkedReader(wire)
        pieces = []
        size = 0
        while (piece := await reader.read()) is not None:
            size += len(piece)
            if size > limit:
                raise BodyTooLarge(size)
            pieces.append(piece)
        return b"".join(pieces)
    return await wire.read_exactly(head.length) if head.length else b""


class ChunkedReader:
    """Read a chunked body piece by piece, as the pieces arrive (trailers are dropped)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.left = 0  # bytes of the current chunk not read yet
        self.done = False

    async def read(self) -> bytes | None:
        """Return the next piece of the body, or None after its end."""
        if self.done:
            return None
        wire = self.wire
        if self.left == 0:
            line = await wire.read_until(b"\r\n", MAX_LINE)
            try:
                size = int(line[:-2].split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
            if size < 0:
                raise ProtocolError("negative chunk size")
            if size == 0:
                while await wire.read_until(b"\r\n", MAX_HEAD) != b"\r\n":
                    pass  # trailer fields
                self.done = True
                return None
            self.left = size
        piece = await wire.read_some(self.left)
        if not piece:
            raise PeerClosed("connection closed mid-chunk")
        self.left -= len(piece)
        if self.left == 0 and await wire.read_exactly(2) != b"\r\n":
            raise ProtocolError("chunk without its CRLF")
        return piece


class ResponseBody:
    """Read a response body by its framing: whole, or piece by piece as it arrives."""

    def __init__(self, wire: Wire, head: ResponseHead, method: bytes) -> None:
        self.wire = wire
        self.empty = method == b"HEAD" or head.status in NO_BODY_STATUS or head.status < 200
        self.head = head
        self.left = head.length or 0
        self._chunked = ChunkedReader(wire) if head.chunked and not self.empty else None
        self.done = self.empty or (head.length == 0 and not head.chunked)

    @property
    def reusable(self) -> bool:
        """Tell whether the connection may carry another request once the body was read."""
        return self.done and self.head.keep_alive and not self.wire.closed

    async def read(self) -> bytes | None:
        """Return the next piece of the body, or None after its end."""
        if self.done:
            return None
        if self._chunked is not None:
            piece = await self._chunked.read()
            self.done = piece is None
            return piece
        if self.head.length is None:  # until the connection closes
            piece = await self.wire.read_some(1 << 16)
            self.done = not piece
            return piece or None
        piece = await self.wire.read_some(self.left)
        if not piece:
            raise PeerClosed("connection closed mid-body")
        self.left -= len(piece)
        self.done = self.left == 0
        return piece

    async def read_all(self) -> bytes:
        if self.head.length and not self.done:
            self.done = True
            return await self.wire.read_exactly(self.head.length)
        pieces = []
        while (piece := await self.read()) is not None:
            pieces.append(piece)
        return b"".join(pieces)


def request_bytes(
    method: bytes, path: bytes, fields: tuple[tuple[bytes, bytes], ...], body: bytes | None
) -> bytes:
    """Serialize a request for a replica, its body framed by Content-Length."""
    lines = [b"%s %s HTTP/1.1\r\n" % (method, path)]
    lines += [b"%s: %s\r\n" % field for field in fields if field[0].lower() not in HOP_BY_HOP]
    if body or method in (b"POST", b"PUT", b"PATCH"):
        lines.append(b"content-length: %d\r\n" % len(body or b""))
    lines.append(b"\r\n")
    if body:
        lines.append(body)
    return b"".join(lines)


def response_head(
    status: int,
    reason: bytes,
    fields: tuple[tuple[bytes, bytes], ...],
    length: int | None,
    keep_alive: bool,
) -> bytes:
    """Serialize a response head for the client: Content-Length, or chunked when None."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [b"%s: %s\r\n" % field for field in fields if field[0].lower() not in HOP_BY_HOP]
    if length is None:
        lines.append(b"transfer-encoding: chunked\r\n")
    elif status not in NO_BODY_STATUS:
        lines.append(b"content-length: %d\r\n" % length)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """Frame one piece of a chunked body (never an empty one: that would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
