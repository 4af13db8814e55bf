"""TLS on the lean path: the gateway's own hosts are terminated here, in memory, so a TLS
gateway costs the lean path's CPU rather than mitmproxy's.

A connection whose first bytes are a TLS ClientHello naming (SNI) a gateway host that has a
certificate and that no route shares is decrypted with `ssl.MemoryBIO`s and served by the lean
path to its end: every request on it goes through the same addons (a path that is not the
gateway's gets the Routing addon's answer, as on mitmproxy's path). Any other TLS connection
(a route's host, no SNI, a ClientHello this reader does not vouch for) is handed to mitmproxy
with its bytes, as before. Only HTTP/1.1 is offered (ALPN): the lean path speaks nothing else.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from dataclasses import dataclass

from proxy.config import ProxyConfig, TlsCert
from proxy.state import host_matches

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
SERVER_NAME = 0x0000
HOST_NAME = 0x00
RECORD_HEADER = 5
MAX_RECORD = 16384 + 2048  # a TLS record's largest body (RFC 8446 5.2), with room to spare
READ_SIZE = 65536


class NeedMore(Exception):
    """The ClientHello has not fully arrived yet."""


def client_hello_sni(data: bytes) -> str | None:
    """The server name a ClientHello record asks for; None when it names none or is no
    ClientHello this reader understands. Raises NeedMore while its record is incomplete."""
    if len(data) < RECORD_HEADER:
        raise NeedMore
    if data[0] != HANDSHAKE:
        return None
    length = int.from_bytes(data[3:5], "big")
    if length > MAX_RECORD:
        return None
    if len(data) < RECORD_HEADER + length:
        raise NeedMore
    try:
        return _server_name(memoryview(data)[RECORD_HEADER : RECORD_HEADER + length])
    except (IndexError, ValueError, UnicodeDecodeError):
        return None  # a ClientHello split over records, or malformed: mitmproxy's to judge


def _server_name(hello: memoryview) -> str | None:
    if hello[0] != CLIENT_HELLO:
        return None
    at = 4 + 2 + 32  # handshake header, client version, random
    at += 1 + hello[at]  # session id
    at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
    at += 1 + hello[at]  # compression methods
    end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
    if end > len(hello):
        raise ValueError("extensions past the record")
    at += 2
    while at + 4 <= end:
        kind = int.from_bytes(hello[at : at + 2], "big")
        size = int.from_bytes(hello[at + 2 : at + 4], "big")
        body = hello[at + 4 : at + 4 + size]
        if kind == SERVER_NAME:
            # server_name_list: length (2), then entries of type (1), length (2), name
            if body[2] == HOST_NAME:
                name_length = int.from_bytes(body[3:5], "big")
                return bytes(body[5 : 5 + name_length]).decode("ascii").lower()
            return None
        at += 4 + size
    return None


def lean_tls_host(config: ProxyConfig, server_name: str | None) -> bool:
    """Whether the lean path terminates TLS for this server name: a gateway host with a
    certificate, that no route names (a route's requests are mitmproxy's to serve)."""
    gateway = config.gateway
    if server_name is None or gateway.tls is None or not host_matches(gateway.hosts, server_name):
        return False
    return not any(host_matches(route.hosts, server_name) for route in config.routes)


@dataclass(frozen=True)
class _CertVersion:
    cert_file: str
    key_file: str
    cert_mtime_ns: int
    key_mtime_ns: int


class ServerContexts:
    """One server SSLContext per certificate, made again when its files change (a renewal)."""

    def __init__(self) -> None:
        self._made: dict[_CertVersion, ssl.SSLContext] = {}

    def context_for(self, tls: TlsCert) -> ssl.SSLContext:
        version = _CertVersion(
            tls.cert_file,
            tls.key_file,
            os.stat(tls.cert_file).st_mtime_ns,
            os.stat(tls.key_file).st_mtime_ns,
        )
        context = self._made.get(version)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(tls.cert_file, tls.key_file)
            context.set_alpn_protocols(["http/1.1"])
            self._made = {version: context}  # the old certificate's context goes
        return context


class TlsSession:
    """The server side of one client connection's TLS, in memory: bytes from the network in,
    plaintext out; plaintext in, bytes for the network out."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False
        self.closed_by_peer = False  # close_notify received

    @property
    def version(self) -> str | None:
        return self._tls.version()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Take bytes from the network; return (plaintext, bytes to send back). Raises
        ssl.SSLError for a handshake or record the client got wrong."""
        self._incoming.write(data)
        if not self.established:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b"", self._outgoing.read()
            self.established = True
        plain = bytearray()
        while True:
            try:
                piece = self._tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed_by_peer = True
                break
            if not piece:
                break
            plain += piece
        return bytes(plain), self._outgoing.read()

    def send(self, data: bytes) -> bytes:
        """Encrypt plaintext; return the bytes for the network."""
        self._tls.write(data)
        return self._outgoing.read()

    def close_notify(self) -> bytes:
        """The close_notify alert to send before closing (b"" when it cannot be made)."""
        # unwrap() then waits for the peer's own close_notify, which is not awaited.
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        return self._outgoing.read()
