"""Path parameters that could walk the Engine API, and engine answers the agent never expects."""

from __future__ import annotations

import contextlib
import http.client
import os
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from agent.tests.harness import client_context

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _raw_request(agent, pki, method: str, path: str) -> http.client.HTTPResponse:
    """Send the path exactly as written (httpx would normalise dot segments)."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", agent.port, context=client_context(pki.ca.cert_path), timeout=10
    )
    connection.request(method, path, headers={"Authorization": f"Bearer {agent.token}"})
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/containers/%2e%2e"),
        ("GET", "/v1/containers/%2E%2E/stats"),
        ("GET", "/v1/containers/../stats"),
        ("DELETE", "/v1/containers/."),
        ("POST", "/v1/containers/%2e/start"),
        ("GET", "/v1/containers/a%2Fb"),
        ("GET", "/v1/containers/a%0Ab"),
        ("GET", "/v1/containers/%00"),
        ("GET", "/v1/images/%2e%2e"),
        ("DELETE", "/v1/images/library/../busybox"),
        ("GET", "/v1/containers/%2e%2e/logs"),
    ],
)
def test_dot_segments_slashes_and_control_characters_are_refused(agent, pki, method, path):
    response = _raw_request(agent, pki, method, path)
    assert response.status == 400, response.body  # type: ignore[attr-defined]
    assert b"path parameter" in response.body  # type: ignore[attr-defined]


def test_an_ordinary_unknown_id_is_still_a_404(agent, pki):
    assert _raw_request(agent, pki, "GET", "/v1/containers/no-such-container-x1").status == 404


class _RedirectingEngine(BaseHTTPRequestHandler):
    """An engine that answers every call with 301, as Docker does for a path with '..'."""

    def _redirect(self) -> None:
        body = b'<a href="/v1.41/json">Moved Permanently</a>.\n'
        self.send_response(301)
        self.send_header("Location", "/v1.41/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _redirect

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet (a UNIX socket has no client address to log)."""


class _UnixEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def redirected_agent(agent_factory, tmp_path_factory) -> Iterator[object]:
    """An agent whose engine socket redirects every call."""
    path = str(tmp_path_factory.mktemp("engine") / "docker.sock")
    server = _UnixEngine(path, _RedirectingEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield agent_factory(docker_socket=path)
    server.shutdown()
    server.server_close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/containers/abc"),
        ("GET", "/v1/containers"),
        ("POST", "/v1/containers/abc/start"),
        ("GET", "/v1/images/busybox"),
    ],
)
def test_an_engine_redirect_is_a_502(redirected_agent, pki, method, path):
    response = _raw_request(redirected_agent, pki, method, path)
    assert response.status == 502, response.body  # type: ignore[attr-defined]
    assert b'"engine_status": 301' in response.body  # type: ignore[attr-defined]


def test_an_engine_redirect_on_a_stream_is_a_502(redirected_agent, pki):
    with redirected_agent.http(pki.ca.cert_path) as client:
        answer = client.post("/v1/images/pull", json={"image": "busybox:latest"})
    assert answer.status_code == 502, answer.text
    assert answer.json()["details"]["engine_status"] == 301
