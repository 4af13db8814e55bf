"""The lean path's HTTP/1.1 reader: what it serves, what it leaves to mitmproxy, bodies cut anywhere."""

from __future__ import annotations

import asyncio

import pytest

from proxy.lean.http1 import (
    BodyTooLarge,
    ChunkedReader,
    ProtocolError,
    ResponseBody,
    parse_request_head,
    parse_response_head,
    read_request_body,
    request_bytes,
    response_head,
)
from proxy.lean.server import IDLE_S, ClientWire, LeanGateway
from proxy.lean.wire import PeerClosed, Wire
from proxy.state import ProxyState

CHAT = b"POST /v1/chat/completions HTTP/1.1\r\nHost: llm.test:8080\r\n"


def head(*lines: bytes, start: bytes = CHAT) -> bytes:
    return start + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def test_a_plain_request_head_is_read():
    parsed = parse_request_head(
        head(b"Content-Type: application/json", b"Content-Length:  12 ", b"Connection: close")
    )
    assert parsed is not None
    assert (parsed.method, parsed.target, parsed.host) == (
        b"POST",
        b"/v1/chat/completions",
        "llm.test:8080",
    )
    assert (parsed.length, parsed.chunked, parsed.keep_alive) == (12, False, False)
    assert (b"Content-Length", b"12") in parsed.fields


@pytest.mark.parametrize(
    "raw",
    [
        head(start=b"POST http://llm.test/v1/chat/completions HTTP/1.1\r\nHost: llm.test\r\n"),
        head(start=b"GET /v1/models HTTP/1.0\r\nHost: llm.test\r\n"),
        head(start=b"PRI * HTTP/2.0\r\n"),
        head(start=b"CONNECT llm.test:443 HTTP/1.1\r\nHost: llm.test\r\n"),
        head(start=b"GET /v1/models HTTP/1.1\r\n"),  # no Host
        head(b"Host: other"),  # two Hosts
        head(b"Content-Length: 5", b"Content-Length: 5"),
        head(b"Content-Length: -1"),
        head(b"Content-Length: 5", b"Transfer-Encoding: chunked"),
        head(b"Transfer-Encoding: gzip, chunked"),
        head(b"Upgrade: websocket", b"Connection: Upgrade"),
        head(b"Expect: something-else"),
        head(b"X-Folded: one", b" two"),  # obsolete line folding
        head(b"Bad Name: x"),
        head(b"X-Nul: a\x00b"),
    ],
)
def test_unusual_requests_are_left_to_mitmproxy(raw):
    assert parse_request_head(raw) is None


def test_expect_continue_is_answered_here_and_not_sent_on():
    parsed = parse_request_head(head(b"Expect: 100-continue", b"Content-Length: 2"))
    assert parsed is not None and parsed.expect_continue
    assert all(name.lower() != b"expect" for name, _ in parsed.fields)


def test_response_heads_and_their_framing():
    chunked = parse_response_head(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
    )
    assert (chunked.status, chunked.chunked, chunked.length, chunked.keep_alive) == (
        200,
        True,
        None,
        True,
    )
    until_close = parse_response_head(b"HTTP/1.0 503 Service Unavailable\r\nX-A: b\r\n\r\n")
    assert (until_close.status, until_close.length, until_close.keep_alive) == (503, None, False)
    closing = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
    )
    assert (closing.length, closing.keep_alive) == (3, False)
    for bad in (
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX\r\n\r\n",
    ):
        with pytest.raises(ProtocolError):
            parse_response_head(bad)


def test_connection_headers_never_cross_and_bodies_are_framed_anew():
    fields = ((b"Host", b"10.0.0.7:8001"), (b"Connection", b"keep-alive"),
              (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"99"))  # fmt: skip
    sent = request_bytes(b"POST", b"/v1/embeddings", fields, b"{}")
    assert sent == (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: 10.0.0.7:8001\r\ncontent-length: 2\r\n\r\n{}"
    )
    assert request_bytes(b"GET", b"/v1/files", fields[:1], b"").endswith(b"8001\r\n\r\n")
    streamed = response_head(200, b"OK", fields[1:], None, keep_alive=False)
    assert streamed == (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )


CHUNKED = b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n"


def feed_in_pieces(wire: Wire, data: bytes, cut: int) -> None:
    loop = asyncio.get_running_loop()
    loop.call_soon(wire.data_received, data[:cut])
    loop.call_soon(wire.data_received, data[cut:])


@pytest.mark.anyio
@pytest.mark.parametrize("cut", range(len(CHUNKED) + 1))
async def test_chunked_body_cut_at_any_byte_reads_the_same(cut):
    wire = Wire()
    feed_in_pieces(wire, CHUNKED + b"NEXT", cut)
    reader = ChunkedReader(wire)
    pieces = []
    while (piece := await reader.read()) is not None:
        pieces.append(piece)
    assert b"".join(pieces) == b"hello world!"
    await asyncio.sleep(0)
    assert bytes(wire.buffer) == b"NEXT"  # the next message is left where it was


@pytest.mark.anyio
async def test_request_body_by_length_and_chunked_and_a_bad_chunk():
    wire = Wire()
    wire.data_received(b'{"a": 1}rest')
    by_length = parse_request_head(head(b"Content-Length: 8"))
    assert by_length is not None
    assert await read_request_body(wire, by_length, 1024) == b'{"a": 1}'
    chunked = parse_request_head(head(b"Transfer-Encoding: chunked"))
    assert chunked is not None
    wire = Wire()
    wire.data_received(CHUNKED)
    assert await read_request_body(wire, chunked, 1024) == b"hello world!"
    wire = Wire()
    wire.data_received(b"zz\r\n")
    with pytest.raises(ProtocolError):
        await read_request_body(wire, chunked, 1024)
    wire = Wire()
    wire.data_received(CHUNKED)  # 12 bytes of body
    with pytest.raises(BodyTooLarge):
        await read_request_body(wire, chunked, 11)


@pytest.mark.anyio
async def test_response_body_cut_short_is_an_error_not_a_short_answer():
    wire = Wire()
    wire.data_received(b"abc")
    wire.eof_received()
    body = ResponseBody(
        wire, parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), b"GET"
    )
    with pytest.raises(PeerClosed):
        await body.read_all()
    wire = Wire()
    wire.data_received(b"until the end")
    wire.eof_received()
    body = ResponseBody(wire, parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n"), b"GET")
    assert await body.read_all() == b"until the end"
    assert not body.reusable


def test_client_connections_idle_past_the_limit_are_closed():
    gateway = LeanGateway(ProxyState(), [], "reverse:http://127.0.0.1:9", "127.0.0.1", 0)
    idle, busy, fresh = ClientWire(gateway), ClientWire(gateway), ClientWire(gateway)
    idle.waiting_since, busy.waiting_since, fresh.waiting_since = 100.0, 0.0, 100.0 + IDLE_S
    gateway._clients |= {idle, busy, fresh}
    gateway.close_idle(now=101.0 + IDLE_S)
    # Only the one that waited for a request past the limit; one mid-request is never cut.
    assert (idle.closed, busy.closed, fresh.closed) == (True, False, False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
