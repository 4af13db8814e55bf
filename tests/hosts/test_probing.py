"""The health sweep's small HTTP/1.1 reader: the bodies an agent (or a proxy before it) sends."""

from __future__ import annotations

import asyncio

import pytest

from portal.hosts import probing
from portal.hosts.probing import ProbeFailed, read_response


def read(raw: bytes) -> tuple[int, bytes, bool]:
    async def go() -> tuple[int, bytes, bool]:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        answer, keep = await read_response(reader)
        return answer.status, answer.body, keep

    return asyncio.run(go())


def test_content_length_body_keeps_the_connection() -> None:
    raw = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'
    assert read(raw) == (200, b'{"a":1}', True)


def test_chunked_body_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=x\r\n[1,2\r\n2\r\n,3\r\n1\r\n]\r\n0\r\nX-Trailer: y\r\n\r\n"
    )
    assert read(raw) == (200, b"[1,2,3]", True)


def test_connection_close_and_http10_are_not_kept() -> None:
    closing = b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    until_eof = b"HTTP/1.1 200 OK\r\n\r\n[]"
    assert read(closing) == (401, b"", False)
    assert read(old) == (200, b"{}", False)
    assert read(until_eof) == (200, b"[]", False)


def test_what_is_not_an_answer_fails_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probing, "MAX_BODY_BYTES", 10)
    with pytest.raises(ProbeFailed, match="not an HTTP"):
        read(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(ProbeFailed, match="size limit"):
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + b"x" * 11)
    with pytest.raises(asyncio.IncompleteReadError):  # the probe reports it as not answered
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort")
