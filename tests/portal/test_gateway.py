"""The proxy context: config document (against the proxy's JSON schema), keys, usage ingest,
and the whole loop with a real spectr-proxy process fetching from a real portal server."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import redis
from werkzeug.serving import make_server

from portal.app import create_app
from portal.extensions import db
from portal.proxy.models import UsageRecord
from portal.proxy.usage import ingest_usage, usage_aggregates
from tests.portal.conftest import REDIS_URL, ApiClient, _test_config

SCHEMA = json.loads((Path(__file__).parents[2] / "proxy" / "config.schema.json").read_text())


@pytest.fixture
def prefix():
    value = f"spectr-test-{uuid.uuid4().hex[:10]}:"
    yield value
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{value}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def gateway_app(tmp_path, sqlite_template, prefix):
    """The portal on SQLite with Redis for proxy notifications and the usage stream."""
    shutil.copy(sqlite_template, tmp_path / "spectr.db")
    config = _test_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'spectr.db'}",
        SPECTR_REDIS_URL=REDIS_URL,
        SPECTR_PROXY_REDIS_PREFIX=prefix,
    )
    app = create_app(config)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def operator(gateway_app):
    from portal.admin import service

    user = service.create_user("gw-operator", "correct horse battery", "operator")
    _, token = service.create_token(user, "t", 1)
    return ApiClient(gateway_app.test_client(), token)


def test_config_document_follows_the_proxy_schema(operator):
    operator.post(
        "/api/v1/proxy/routes",
        json={"name": "web", "path_prefix": "/web", "upstreams": ["http://127.0.0.1:9001"]},
    )
    operator.put(
        "/api/v1/proxy/models",
        json={"name": "llama-3-8b", "aliases": ["llama"], "replicas": ["http://127.0.0.1:9002"]},
    )
    operator.post(
        "/api/v1/proxy/keys",
        json={"name": "team-a", "rpm": 60, "budget_tokens": 1000, "budget_period": "day"},
    )
    response = operator.get("/api/v1/proxy/config")
    document = response.get_json()
    jsonschema.validate(document, SCHEMA)
    assert response.headers["ETag"] == f'"{document["etag"]}"'
    assert document["version"] == 3
    assert document["routes"][0]["pool"] == "route-web"
    assert document["models"][0]["aliases"] == ["llama"]
    assert document["keys"][0]["budget"] == {"tokens": 1000, "period": "day"}
    unchanged = operator.get(
        "/api/v1/proxy/config", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert unchanged.status_code == 304


def test_a_route_patch_changes_only_what_it_names(operator):
    created = operator.post(
        "/api/v1/proxy/routes",
        json={"name": "api", "path_prefix": "/api", "upstreams": ["http://127.0.0.1:9001"],
              "retries": 3},
    ).get_json()  # fmt: skip
    patched = operator.patch(f"/api/v1/proxy/routes/{created['id']}", json={"retries": 0})
    assert patched.status_code == 200, patched.get_json()
    after = patched.get_json()
    assert after["retries"] == 0
    assert {k: v for k, v in after.items() if k not in ("retries", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("retries", "updated_at")
    }


def test_key_secret_is_shown_once_and_revocation_removes_it(operator):
    created = operator.post(
        "/api/v1/proxy/keys", json={"name": "ci", "models": ["llama-3-8b"]}
    ).get_json()
    assert created["key"].startswith("sk-spectr-")
    assert all("key" not in key for key in operator.get("/api/v1/proxy/keys").get_json())
    assert created["key"] not in operator.get("/api/v1/proxy/config").get_data(as_text=True)
    operator.delete(f"/api/v1/proxy/keys/{created['id']}")
    assert operator.get("/api/v1/proxy/config").get_json()["keys"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "upstreams": ["ftp://nope"]}, "upstreams"),
        ({"name": "bad name!", "upstreams": ["http://127.0.0.1:1"]}, "name"),
        ({"name": "x", "path_prefix": "nope", "upstreams": ["http://127.0.0.1:1"]}, "path_prefix"),
    ],
)
def test_invalid_routes_are_422_naming_the_field(operator, body, field):
    response = operator.post("/api/v1/proxy/routes", json=body)
    assert response.status_code == 422
    assert field in response.get_json()["details"]


def test_viewers_cannot_fetch_the_config_or_create_keys(gateway_app, api_as):
    viewer = api_as("viewer")
    assert viewer.get("/api/v1/proxy/config").status_code == 403
    assert viewer.post("/api/v1/proxy/keys", json={"name": "x"}).status_code == 403


def _usage_entry(request_id: str, model: str, tokens: int, status: int = 200) -> dict[str, str]:
    return {
        "v": "1", "ts": f"{time.time():.3f}", "request_id": request_id, "key_id": "key_1",
        "user": "alice", "model": model, "endpoint": "/v1/chat/completions", "replica": "r1",
        "status": str(status), "prompt_tokens": str(tokens), "completion_tokens": str(tokens),
        "total_tokens": str(2 * tokens), "latency_ms": "12.5", "ttfb_ms": "3.0", "stream": "0",
        "proxy": "p1",
    }  # fmt: skip


def test_usage_is_ingested_once_and_aggregated(gateway_app, prefix):
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    stream = f"{prefix}usage"
    client.xadd(stream, _usage_entry("r-1", "llama", 10))
    client.xadd(stream, _usage_entry("r-2", "llama", 5, status=429))
    client.xadd(stream, _usage_entry("r-3", "mistral", 7))
    assert ingest_usage() == 3
    client.xadd(stream, _usage_entry("r-1", "llama", 10))  # a re-delivery of the same request
    assert ingest_usage() == 0
    assert ingest_usage() == 0  # everything acknowledged
    client.close()
    assert db.session.query(UsageRecord).count() == 3
    per_model = {row["group"]: row for row in usage_aggregates("model")}
    assert per_model["llama"]["requests"] == 2
    assert per_model["llama"]["total_tokens"] == 30
    assert per_model["llama"]["errors"] == 1
    assert usage_aggregates("key")[0]["requests"] == 3


@pytest.fixture
def portal_server(gateway_app):
    server = make_server("127.0.0.1", 0, gateway_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.slow
def test_proxy_follows_the_portal_keys_and_reports_usage(operator, portal_server, prefix, tmp_path):
    from tests.proxy.llm_standin import StandInServer
    from tests.proxy.proxy_harness import ProxyProcess, client, wait_until

    upstream = StandInServer(name="llm").start()
    operator.put("/api/v1/proxy/models", json={"name": "tiny", "replicas": [upstream.url]})
    created = operator.post("/api/v1/proxy/keys", json={"name": "e2e"}).get_json()
    token_file = tmp_path / "portal-token"
    token_file.write_text(operator.headers["Authorization"].split(" ", 1)[1])
    proxy = ProxyProcess(
        ["--portal-url", portal_server, "--portal-token-file", str(token_file), "--poll-interval", "30",
         "--redis-url", REDIS_URL],
        redis_prefix=prefix,
    ).start()  # fmt: skip
    try:
        with client(proxy, created["key"]) as http:
            body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
            wait_until(lambda: http.post("/v1/chat/completions", json=body).status_code == 200, 10)
            operator.delete(f"/api/v1/proxy/keys/{created['id']}")
            revoked_at = time.monotonic()
            wait_until(lambda: http.post("/v1/chat/completions", json=body).status_code == 401, 5)
            # Redis pub/sub tells the proxy at once; the 30 s poll could not have done it.
            assert time.monotonic() - revoked_at < 2.0
        wait_until(lambda: ingest_usage() > 0 or db.session.query(UsageRecord).count() > 0, 10, 0.2)
        record = db.session.query(UsageRecord).first()
        assert (record.model, record.status, record.key_id) == ("tiny", 200, created["public_id"])
        assert record.total_tokens > 0
    finally:
        proxy.stop()
        upstream.stop()
