"""Config changes reach running proxies without a restart: from a file and from the portal."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxy.tests.proxy_harness import (
    REPO_ROOT,
    client,
    free_port,
    new_key,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CHAT = "/v1/chat/completions"
HELLO = {"model": "llama", "messages": [{"role": "user", "content": "hi"}]}
TOKEN = "service-token-for-tests"


def config(version: int, server, keys: list[dict]) -> dict:
    return {
        "version": version,
        "etag": f"v{version}",
        "models": [{"name": "llama", "replicas": [{"url": server.url}]}],
        "keys": keys,
    }


class PortalStandIn(ThreadingHTTPServer):
    """Serves GET /api/v1/proxy/config the way the portal's contract says (proxy/README.md).

    The portal's own endpoint is the lead's work and does not exist yet; this server honours the
    same contract: service token, ETag, 304 on If-None-Match.
    """

    daemon_threads = True

    def __init__(self, document: dict, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), PortalHandler)
        self.document = document
        self.answers: list[int] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class PortalHandler(BaseHTTPRequestHandler):
    server: PortalStandIn
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        etag = f'"{self.server.document["etag"]}"'
        if self.path != "/api/v1/proxy/config":
            status, body = 404, b""
        elif self.headers.get("authorization") != f"Bearer {TOKEN}":
            status, body = 401, b""
        elif self.headers.get("if-none-match") == etag:
            status, body = 304, b""
        else:
            status, body = 200, json.dumps(self.server.document).encode()
        self.server.answers.append(status)
        self.send_response(status)
        self.send_header("etag", etag)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_key_revoked_in_file_stops_working(upstream, start_proxy, tmp_path):
    a = upstream("a")
    secret, digest = new_key()
    proxy = start_proxy(config(1, a, [{"id": "k1", "sha256": digest}]))
    with client(proxy, secret) as http:
        before = http.post(CHAT, json=HELLO)
        # A long stream is open while the config changes; it must finish untouched.
        with http.stream(
            "POST", CHAT, json={**HELLO, "stream": True, "max_tokens": 20}
        ) as open_stream:
            write_config(tmp_path / "proxy-config.json", config(2, a, []))
            took = wait_until(lambda: http.post(CHAT, json=HELLO).status_code == 401)
            streamed = open_stream.read()
    assert before.status_code == 200
    assert open_stream.status_code == 200
    assert streamed.count(b"data:") == 21
    print(f"revoked after {took:.3f}s")


def test_portal_change_notified_through_redis_applies(
    upstream, start_proxy, redis_client, redis_prefix, tmp_path
):
    a = upstream("a")
    secret, digest = new_key()
    portal = PortalStandIn(config(1, a, [{"id": "k1", "sha256": digest}]))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    # Polling is slow here, so only the notification can make the change arrive in time.
    proxy = start_proxy(args=["--portal-url", portal.url, "--portal-token-file", str(token_file),
                              "--poll-interval", "60"])  # fmt: skip
    try:
        channel = f"{redis_prefix}proxy:config"
        wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 1)
        with client(proxy, secret) as http:
            before = http.post(CHAT, json=HELLO)
            portal.document = config(2, a, [])
            redis_client.publish(channel, "v2")
            took = wait_until(lambda: http.post(CHAT, json=HELLO).status_code == 401)
    finally:
        portal.shutdown()
        portal.server_close()
    assert before.status_code == 200
    assert portal.answers[0] == 200
    assert 304 in portal.answers  # the refetch at subscription found nothing new
    assert portal.answers[-1] == 200
    print(f"revoked after {took:.3f}s")


def test_invalid_config_change_keeps_the_old_one(upstream, start_proxy, tmp_path):
    a = upstream("a")
    secret, digest = new_key()
    proxy = start_proxy(config(1, a, [{"id": "k1", "sha256": digest}]))
    broken = config(2, a, [{"id": "k1", "sha256": "not-a-hash"}])
    write_config(tmp_path / "proxy-config.json", broken)
    wait_until(lambda: "config not applied" in proxy.output())
    with client(proxy, secret) as http:
        assert http.post(CHAT, json=HELLO).status_code == 200
    assert "keys/0/sha256" in proxy.output()


def test_bad_config_file_stops_the_start_with_the_reason(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "routes": [{"name": "r", "pool": "missing"}]}))
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config-file", str(bad), "--listen-port", "0",
         "--admin-port", "0", "--confdir", str(tmp_path / "mitmproxy")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid config" in result.stderr and "unknown pool 'missing'" in result.stderr
    assert "Traceback" not in result.stderr


def test_same_etag_with_other_content_still_applies(upstream, start_proxy, tmp_path):
    a = upstream("a")
    secret, digest = new_key()
    proxy = start_proxy(config(1, a, [{"id": "k1", "sha256": digest}]))
    unchanged_tag = {**config(1, a, []), "etag": "v1"}  # a hand-edited file keeps its etag
    write_config(tmp_path / "proxy-config.json", unchanged_tag)
    with client(proxy, secret) as http:
        wait_until(lambda: http.post(CHAT, json=HELLO).status_code == 401)


def test_proxy_started_before_the_portal_picks_up_config_by_polling(
    upstream, start_proxy, tmp_path
):
    a = upstream("a")
    secret, digest = new_key()
    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    proxy = start_proxy(args=["--portal-url", f"http://127.0.0.1:{port}",
                              "--portal-token-file", str(token_file), "--poll-interval", "0.2"])  # fmt: skip
    with client(proxy, secret) as http:
        assert http.post(CHAT, json=HELLO).status_code == 401  # no config yet: no keys
        portal = PortalStandIn(config(1, a, [{"id": "k1", "sha256": digest}]), port=port)
        try:
            wait_until(lambda: http.post(CHAT, json=HELLO).status_code == 200)
        finally:
            portal.shutdown()
            portal.server_close()
    assert "portal config fetch failed" in proxy.output()
