"""What the OpenAPI document promises about errors holds at the edges too: a 405 names the
allowed methods, and the HTTP servers' own refusals (URI too long, headers too large) are the
API's JSON error, from `spectr run`'s werkzeug server and from gunicorn with the images' config."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server

from portal.web.server_errors import JsonErrorsRequestHandler
from tests.hosts.conftest import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "patch", "delete")


def test_every_path_answers_an_undocumented_method_with_405_and_allow(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    checked = 0
    for path, operations in spec["paths"].items():
        documented = {m for m in operations if m in METHODS}
        missing = [m for m in METHODS if m not in documented]
        if not missing:
            continue
        url = _example_url(path, operations)
        answer = client.open(url, method=missing[0].upper())
        assert answer.status_code == 405, (path, missing[0], answer.status_code)
        allowed = {m.strip().lower() for m in answer.headers["Allow"].split(",")}
        assert documented <= allowed, (path, allowed)
        assert answer.get_json()["code"] == "method_not_allowed"
        checked += 1
    assert checked >= 50


def _example_url(path: str, operations: dict) -> str:
    """The path with ids that do not exist (routing decides) and enum parameters' first value."""
    enums = {p["name"]: p["schema"]["enum"][0] for p in operations.get("parameters", [])
             if "enum" in p.get("schema", {})}  # fmt: skip
    for name, value in enums.items():
        path = path.replace("{" + name + "}", value)
    url = path.replace("{", "").replace("}", "")
    return "/".join("1" if part.endswith("_id") else part for part in url.split("/"))


def _raw_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    """A GET through http.client, which (unlike httpx) sends a URI of any length."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), json.loads(answer.read())
    finally:
        connection.close()


def _assert_json_refusal(answer: tuple[int, str, dict], status: int, code: str) -> None:
    got_status, content_type, body = answer
    assert got_status == status
    assert content_type.startswith("application/json")
    assert body["code"] == code and body["message"] and body["details"] == {}


@pytest.fixture
def werkzeug_portal(app) -> Iterator[str]:
    """The portal behind the server `spectr run` starts, with its request handler."""
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=JsonErrorsRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_spectr_run_answers_a_too_long_uri_in_json(werkzeug_portal: str) -> None:
    answer = _raw_get(werkzeug_portal, f"/api/v1/hosts?q={'a' * 70_000}")
    _assert_json_refusal(answer, 414, "uri_too_long")


@pytest.fixture
def gunicorn_portal(tmp_path: Path) -> Iterator[str]:
    """gunicorn with deploy/docker/gunicorn.conf.py, on a loopback port, SQLite instance."""
    port = free_port()
    metrics = tmp_path / "metrics"  # gunicorn.conf.py's multiprocess metrics, kept out of the repo
    env = {
        **os.environ,
        "SPECTR_INSTANCE_PATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/docker/gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "portal.app:create_app()",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=60, what="gunicorn to serve")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
def test_gunicorn_answers_its_own_refusals_in_json(gunicorn_portal: str) -> None:
    long_uri = _raw_get(gunicorn_portal, f"/api/v1/hosts?q={'a' * 9000}")
    _assert_json_refusal(long_uri, 414, "uri_too_long")
    huge_header = _raw_get(gunicorn_portal, "/api/v1/hosts", {"X-Big": "b" * 9000})
    _assert_json_refusal(huge_header, 431, "headers_too_large")
    assert httpx.get(f"{gunicorn_portal}/healthz", timeout=5).status_code == 200
