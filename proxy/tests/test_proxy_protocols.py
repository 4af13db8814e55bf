"""WebSocket pass-through and TLS termination through a real spectr-proxy process."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from proxy.tests.llm_standin import StandInServer
from proxy.tests.proxy_harness import wait_until, write_config
from proxy.tests.tls_support import https_get, self_signed

pytestmark = [pytest.mark.slow, pytest.mark.redis]


class WsEchoHandler(socketserver.BaseRequestHandler):
    """Accept a WebSocket and answer every text message with `echo:<text>`."""

    def handle(self) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while data := self.request.recv(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    self.request.sendall(ws.send(AcceptConnection()))
                elif isinstance(event, TextMessage):
                    self.request.sendall(ws.send(TextMessage(data=f"echo:{event.data}")))
                elif isinstance(event, CloseConnection):
                    self.request.sendall(ws.send(event.response()))
                    return


@pytest.fixture
def ws_echo() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), WsEchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def next_event(sock: socket.socket, ws: WSConnection, kind: type) -> object:
    while True:
        for event in ws.events():
            if isinstance(event, kind):
                return event
        data = sock.recv(65536)
        assert data, "connection closed before the expected WebSocket event"
        ws.receive_data(data)


def test_websocket_passes_through_both_ways(ws_echo, start_proxy):
    port = ws_echo.server_address[1]
    proxy = start_proxy(
        {
            "version": 1,
            "pools": [{"name": "ws", "replicas": [{"url": f"http://127.0.0.1:{port}"}]}],
            "routes": [{"name": "ws", "hosts": ["ws.test"], "pool": "ws"}],
        }
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host="ws.test", target="/chat")))
        next_event(sock, ws, AcceptConnection)
        replies = []
        for text in ("one", "two"):
            sock.sendall(ws.send(TextMessage(data=text)))
            replies.append(next_event(sock, ws, TextMessage).data)
        sock.sendall(ws.send(CloseConnection(code=1000)))
    assert replies == ["echo:one", "echo:two"]


def tls_config(
    version: int, backend: StandInServer, cert: tuple[Path, Path], gateway_cert: tuple[Path, Path]
) -> dict:
    return {
        "version": version,
        "gateway": {"hosts": ["llm.test"], "tls": {"cert_file": str(gateway_cert[0]), "key_file": str(gateway_cert[1])}},
        "pools": [{"name": "web", "replicas": [{"url": backend.url}]}],
        "routes": [{"name": "secure", "hosts": ["secure.test"], "pool": "web",
                    "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])}}],
    }  # fmt: skip


def test_tls_is_terminated_with_configured_certificates(upstream, start_proxy, tmp_path):
    backend: StandInServer = upstream("plain-http")
    first, renewed = tmp_path / "first", tmp_path / "renewed"
    first.mkdir()
    renewed.mkdir()
    cert, gateway_cert = self_signed("secure.test", first), self_signed("llm.test", first)
    proxy = start_proxy(tls_config(1, backend, cert, gateway_cert))

    head, _, body = https_get(proxy.port, "secure.test", cert[0]).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b'"replica": "plain-http"' in body
    assert b'"x-forwarded-proto": "https"' in body
    gateway = https_get(proxy.port, "llm.test", gateway_cert[0], path="/v1/models")
    assert gateway.startswith(b"HTTP/1.1 401") and b"missing_api_key" in gateway

    new_cert = self_signed("secure.test", renewed)
    write_config(tmp_path / "proxy-config.json", tls_config(2, backend, new_cert, gateway_cert))
    wait_until(lambda: https_get_or_none(proxy.port, "secure.test", new_cert[0]) is not None)
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(proxy.port, "secure.test", cert[0])  # the old certificate is gone


def https_get_or_none(port: int, host: str, cafile: Path) -> bytes | None:
    try:
        return https_get(port, host, cafile)
    except ssl.SSLCertVerificationError:
        return None
