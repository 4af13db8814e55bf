"""Minimal Docker Engine API client over the UNIX socket.

The docker SDK (with requests and urllib3) alone lifts an idle process to ~30 MB RSS, the whole
footprint budget of the agent, so the agent speaks the Engine API with the standard library.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

API_VERSION = "v1.41"
_HEADER_LIMIT = 64 * 1024


class DockerError(Exception):
    """The engine answered with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def quote_segment(value: str) -> str:
    """Quote one path segment (an id, a name or an image reference) for the Engine API."""
    return quote(value, safe="")


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", "")) or raw.decode(errors="replace")
    except (ValueError, AttributeError):
        return raw.decode(errors="replace").strip()


def _unexpected(status: int) -> bool:
    # The engine redirects a path it cleans (a ".." in it): the call did not happen, so it must
    # not pass for success. 304 is "already started/stopped", which callers treat as done.
    return 300 <= status < 400 and status != 304


def _redirect_message(status: int) -> str:
    return f"docker engine answered {status} (a redirect): the call was not carried out"


class DockerAPI:
    """Docker Engine API calls; one instance per process, one connection per call."""

    def __init__(self, socket_path: str = "/var/run/docker.sock", timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = f"/{API_VERSION}{path}"
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        return url

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer (None when empty)."""
        conn = _UnixHTTPConnection(self.socket_path, timeout or self.timeout)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, self._url(path, params), body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise DockerError(0, f"docker engine unreachable: {exc}") from exc
        finally:
            conn.close()
        if response.status >= 400:
            raise DockerError(response.status, _error_message(raw))
        if _unexpected(response.status):
            raise DockerError(response.status, _redirect_message(response.status))
        if response.status == 304 or not raw:
            return None
        return json.loads(raw) if raw.lstrip()[:1] in (b"{", b"[") else raw.decode()

    def open_stream(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        upgrade: bool = False,
        timeout: float | None = None,
    ) -> DockerStream:
        """Send a request whose answer is a long-lived stream; raise DockerError on error status."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout or self.timeout)
        try:
            sock.connect(self.socket_path)
            sock.sendall(self._raw_request(method, path, params, body, headers, upgrade))
            stream = DockerStream(sock)
            stream.read_head()
        except OSError as exc:
            sock.close()
            raise DockerError(0, f"docker engine unreachable: {exc}") from exc
        if stream.status >= 400 or _unexpected(stream.status):
            message = (
                _error_message(stream.read_all())
                if stream.status >= 400
                else _redirect_message(stream.status)
            )
            stream.close()
            raise DockerError(stream.status, message)
        return stream

    def _raw_request(self, method, path, params, body, headers, upgrade) -> bytes:
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {self._url(path, params)} HTTP/1.1", "Host: docker"]
        if upgrade:
            lines += ["Connection: Upgrade", "Upgrade: tcp"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class DockerStream:
    """The body of one streamed answer, read incrementally from its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.status = 0
        self.headers: dict[str, str] = {}
        self._pending = b""
        self._chunks: _ChunkedDecoder | None = None
        self._length: int | None = None
        self.eof = False

    def fileno(self) -> int:
        """Return the socket's descriptor, so callers can select() on it."""
        return self.sock.fileno()

    def read_head(self) -> None:
        """Read the status line and headers."""
        data = b""
        while b"\r\n\r\n" not in data:
            piece = self.sock.recv(4096)
            if not piece or len(data) > _HEADER_LIMIT:
                raise OSError("docker engine closed the stream before its headers")
            data += piece
        head, self._pending = data.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self._chunks = _ChunkedDecoder()
        elif "content-length" in self.headers and self.status != 101:
            self._length = int(self.headers["content-length"])

    def read_some(self) -> bytes:
        """Return the body bytes available after one socket read; b'' may mean only framing."""
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
                return b""
        if self._chunks is not None:
            body = self._chunks.feed(data)
            self.eof = self._chunks.done
            return body
        if self._length is not None:
            data = data[: self._length]
            self._length -= len(data)
            self.eof = self._length <= 0
        return data

    def take_buffered(self) -> bytes:
        """Hand over what was read past the head (a hijacked stream's first bytes)."""
        data, self._pending = self._pending, b""
        return data

    def has_buffered(self) -> bool:
        """Tell whether body bytes are waiting without a socket read."""
        return bool(self._pending)

    def read_all(self) -> bytes:
        """Read the body to its end."""
        parts = []
        while not self.eof:
            parts.append(self.read_some())
        return b"".join(parts)

    def iter_lines(self) -> Iterator[bytes]:
        """Yield newline-terminated lines of the body (JSON-lines answers such as pulls)."""
        buffer = b""
        while not self.eof:
            buffer += self.read_some()
            *lines, buffer = buffer.split(b"\n")
            yield from (line for line in lines if line.strip())
        if buffer.strip():
            yield buffer

    def close(self) -> None:
        """Close the socket; the engine stops streaming."""
        self.sock.close()


class _ChunkedDecoder:
    """Incremental decoder of HTTP/1.1 chunked transfer coding."""

    def __init__(self) -> None:
        self.buffer = b""
        self.remaining = 0
        self.needs_crlf = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Add raw bytes; return the payload bytes they complete."""
        self.buffer += data
        out = []
        while not self.done:
            if self.remaining:
                piece = self.buffer[: self.remaining]
                out.append(piece)
                self.buffer = self.buffer[len(piece) :]
                self.remaining -= len(piece)
                if self.remaining:
                    break
                self.needs_crlf = True
            if self.needs_crlf:
                if len(self.buffer) < 2:
                    break
                self.buffer, self.needs_crlf = self.buffer[2:], False
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            size = int(self.buffer[:end].split(b";")[0], 16)
            self.buffer = self.buffer[end + 2 :]
            self.remaining = size
            self.done = size == 0
        return b"".join(out)


class FrameDecoder:
    """Split Docker's multiplexed stdout/stderr stream into (stream name, bytes) frames."""

    NAMES = {0: "stdin", 1: "stdout", 2: "stderr"}

    def __init__(self, tty: bool = False) -> None:
        self.tty = tty
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """Add bytes; return the complete frames."""
        if self.tty:
            return [("stdout", data)] if data else []
        self.buffer += data
        frames = []
        while len(self.buffer) >= 8:
            kind, size = struct.unpack(">BxxxL", self.buffer[:8])
            if len(self.buffer) < 8 + size:
                break
            frames.append((self.NAMES.get(kind, "stdout"), self.buffer[8 : 8 + size]))
            self.buffer = self.buffer[8 + size :]
        return frames
