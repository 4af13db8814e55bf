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
from sqlalchemy import select
from werkzeug.serving import make_server

from portal.app import create_app
from portal.core.audit import AuditEvent
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


@pytest.fixture
def admin(gateway_app):
    from portal.admin import service

    user = service.create_user("gw-admin", "correct horse battery", "admin")
    _, token = service.create_token(user, "t", 1)
    return ApiClient(gateway_app.test_client(), token)


def _team(admin, **quotas):
    """A project 'team-a' with these quotas, and two gateway keys of it."""
    project = admin.post("/api/v1/projects", json={"name": "team-a", **quotas}).get_json()
    keys = [
        admin.post("/api/v1/proxy/keys", json={"name": n, "project": "team-a"}).get_json()
        for n in ("one", "two")
    ]
    return project, keys


def test_config_document_gives_proxies_of_contract_1_2_each_keys_project(admin):
    project, (one, _) = _team(admin, gateway_rpm_limit=60, gateway_tokens_per_day_limit=1000)
    admin.post("/api/v1/proxy/keys", json={"name": "plain"})  # in `default`
    served = admin.get("/api/v1/proxy/config", headers={"Spectr-Proxy-Contract": "1.2"})
    document = served.get_json()
    jsonschema.validate(document, SCHEMA)
    team = {"id": str(project["id"]), "name": "team-a", "rpm": 60, "tokens_per_day": 1000,
            "tokens_per_month": None}  # fmt: skip
    assert team in document["projects"]
    assert [p["name"] for p in document["projects"]] == ["default", "team-a"]  # by id
    keys = {key["id"]: key for key in document["keys"]}
    assert keys[one["public_id"]]["project"] == str(project["id"])

    # A proxy of contract 1.1 (or before) refuses unknown fields: it gets none of them.
    for contract in ("1.1", None):
        headers = {"Spectr-Proxy-Contract": contract} if contract else {}
        older = admin.get("/api/v1/proxy/config", headers=headers).get_json()
        assert "projects" not in older and all("project" not in k for k in older["keys"])

    # A change of a gateway quota is a change of the document; of another quota, not.
    item = f"/api/v1/projects/{project['id']}"
    admin.patch(item, json={"gpu_limit": 2})
    assert admin.get("/api/v1/proxy/config").get_json()["version"] == document["version"]
    admin.patch(item, json={"gateway_tokens_per_month_limit": 30000})
    changed = admin.get("/api/v1/proxy/config", headers={"Spectr-Proxy-Contract": "1.2"})
    assert changed.get_json()["version"] == document["version"] + 1
    assert {**team, "tokens_per_month": 30000} in changed.get_json()["projects"]


def test_usage_records_land_in_their_project(gateway_app, admin, prefix):
    project, (one, two) = _team(admin)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    stream = f"{prefix}usage"
    named = {**_usage_entry("r-1", "llama", 10), "key_id": one["public_id"]}
    client.xadd(stream, {**named, "project": str(project["id"])})
    # A proxy of contract 1.1 names no project: the key's is taken.
    client.xadd(stream, {**_usage_entry("r-2", "llama", 4), "key_id": two["public_id"]})
    client.xadd(stream, _usage_entry("r-3", "llama", 1))  # a key the portal does not know
    client.close()
    assert ingest_usage() == 3
    rows = db.session.query(UsageRecord).order_by(UsageRecord.request_id).all()
    assert [row.project_id for row in rows] == [project["id"], project["id"], None]
    usage = admin.get(f"/api/v1/projects/{project['id']}").get_json()["usage"]
    assert usage["gateway_tokens_per_day"] == {"used": 28, "limit": None}


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


def _put_model(operator, name: str, **fields):
    body = {"name": name, "replicas": [f"http://127.0.0.1:{9100 + len(name)}"], **fields}
    return operator.put("/api/v1/proxy/models", json=body)


def test_fallbacks_reach_the_config_document_in_order(operator):
    from proxy.config import parse_config

    _put_model(operator, "small")
    _put_model(operator, "medium", aliases=["med"])
    operator.put("/api/v1/proxy/models", json={"name": "idle", "replicas": []})
    reply = _put_model(operator, "large", fallbacks=["medium", "idle", "small"])
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["fallbacks"] == ["medium", "idle", "small"]

    document = operator.get("/api/v1/proxy/config").get_json()
    jsonschema.validate(document, SCHEMA)
    served = {model["name"]: model for model in document["models"]}
    # A model without replicas is not in the document, so it is no fallback there.
    assert served["large"]["fallbacks"] == ["medium", "small"]
    assert "fallbacks" not in served["small"]
    assert parse_config(document).models["large"].fallbacks == ("medium", "small")


@pytest.mark.parametrize(
    ("name", "fallbacks", "problem"),
    [
        ("large", ["nowhere"], "no gateway model named 'nowhere'"),
        ("large", ["large"], "cannot fall back to itself"),
        ("large", ["med"], "'med' is an alias of 'medium'"),
        ("large", ["small", "small"], "listed twice"),
        ("small", ["large"], "cycle: small -> large -> medium -> small"),
        ("bad", ["no way!"], None),  # not a model name at all: the schema refuses it
    ],
)
def test_invalid_fallbacks_are_422_saying_why(operator, name, fallbacks, problem):
    _put_model(operator, "small")
    _put_model(operator, "medium", aliases=["med"], fallbacks=["small"])
    _put_model(operator, "large", fallbacks=["medium"])
    before = operator.get("/api/v1/proxy/config").get_json()

    reply = _put_model(operator, name, fallbacks=fallbacks)

    assert reply.status_code == 422, reply.get_json()
    details = reply.get_json()["details"]
    assert "fallbacks" in details
    if problem:
        assert problem in details["fallbacks"][0]
    assert operator.get("/api/v1/proxy/config").get_json()["etag"] == before["etag"]


def test_deleting_a_model_takes_it_out_of_other_models_fallbacks(operator):
    _put_model(operator, "small")
    _put_model(operator, "medium")
    _put_model(operator, "large", fallbacks=["small", "medium"])
    small = next(m for m in operator.get("/api/v1/proxy/models").get_json() if m["name"] == "small")

    assert operator.delete(f"/api/v1/proxy/models/{small['id']}").status_code == 204

    models = {m["name"]: m for m in operator.get("/api/v1/proxy/models").get_json()}
    assert models["large"]["fallbacks"] == ["medium"]
    jsonschema.validate(operator.get("/api/v1/proxy/config").get_json(), SCHEMA)


def test_a_deployment_publishing_a_replica_keeps_the_model_fallbacks(operator):
    from portal.proxy import service

    _put_model(operator, "small")
    _put_model(operator, "large", fallbacks=["small"])
    service.upsert_model({"name": "large", "replicas": ["http://127.0.0.1:9300"]})
    models = {m["name"]: m for m in operator.get("/api/v1/proxy/models").get_json()}
    assert models["large"]["fallbacks"] == ["small"]
    assert models["large"]["replicas"] == ["http://127.0.0.1:9300"]


def test_gateway_page_lists_each_model_fallbacks(gateway_app, operator):
    _put_model(operator, "small")
    _put_model(operator, "medium")
    _put_model(operator, "large", fallbacks=["medium", "small"])
    browser = gateway_app.test_client()
    browser.post("/login", data={"username": "gw-operator", "password": "correct horse battery"})
    page = browser.get("/gateway").get_data(as_text=True)
    assert "<td>medium → small</td>" in page


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


def test_usage_answered_by_a_fallback_keeps_the_model_asked_for(gateway_app, prefix):
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.xadd(f"{prefix}usage", {**_usage_entry("r-9", "small", 3), "fallback_from": "large"})
    client.close()
    assert ingest_usage() == 1
    record = db.session.query(UsageRecord).one()
    assert (record.model, record.extra["fallback_from"]) == ("small", "large")


@pytest.fixture
def portal_server(gateway_app):
    server = make_server("127.0.0.1", 0, gateway_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.slow
def test_proxy_follows_the_portal_keys_and_reports_usage(operator, portal_server, prefix, tmp_path):
    from proxy.tests.llm_standin import StandInServer
    from proxy.tests.proxy_harness import ProxyProcess, client, wait_until

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


@pytest.mark.slow
def test_a_projects_rpm_set_in_the_portal_is_shared_by_its_keys_in_the_proxy(
    admin, portal_server, prefix, tmp_path
):
    from proxy.tests.llm_standin import StandInServer
    from proxy.tests.proxy_harness import ProxyProcess, client, wait_until

    upstream = StandInServer(name="llm").start()
    admin.put("/api/v1/proxy/models", json={"name": "tiny", "replicas": [upstream.url]})
    project, (one, two) = _team(admin, gateway_rpm_limit=0)  # nothing at first
    token_file = tmp_path / "portal-token"
    token_file.write_text(admin.headers["Authorization"].split(" ", 1)[1])
    proxy = ProxyProcess(
        ["--portal-url", portal_server, "--portal-token-file", str(token_file),
         "--poll-interval", "30", "--redis-url", REDIS_URL],
        redis_prefix=prefix,
    ).start()  # fmt: skip
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with client(proxy, one["key"]) as first, client(proxy, two["key"]) as second:
            wait_until(lambda: first.post("/v1/chat/completions", json=body).status_code == 429)
            refused = second.post("/v1/chat/completions", json=body)
            assert refused.json()["error"]["code"] == "project_quota_exceeded"
            assert "'team-a'" in refused.json()["error"]["message"]
            if 60 - time.time() % 60 < 10:  # the two requests below in one minute
                time.sleep(60 - time.time() % 60 + 0.1)
            admin.patch(f"/api/v1/projects/{project['id']}", json={"gateway_rpm_limit": 2})
            # Redis pub/sub tells the proxy at once (the poll is every 30 s).
            wait_until(lambda: first.post("/v1/chat/completions", json=body).status_code == 200)
            last = second.post("/v1/chat/completions", json=body)
            over = first.post("/v1/chat/completions", json=body)
        assert last.status_code == 200  # the project's second request this minute
        assert over.status_code == 429
        assert over.json()["error"]["message"] == (
            "Project 'team-a' is over its gateway quota of 2 requests per minute (rpm)."
        )
    finally:
        proxy.stop()
        upstream.stop()


def _signed_in_page(gateway_app):
    browser = gateway_app.test_client()
    browser.post("/login", data={"username": "gw-operator", "password": "correct horse battery"})
    page = browser.get("/gateway").get_data(as_text=True)
    return browser, page, page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_gateway_page_says_whether_a_proxy_runs_and_where(gateway_app, operator):
    # Issue 13, finding 17: `make run` starts no proxy, yet nothing said so.
    browser, page, _ = _signed_in_page(gateway_app)
    assert "No spectr-proxy has fetched its configuration" in page

    fetched = operator.get(
        "/api/v1/proxy/config", headers={"X-Spectr-Proxy-Metrics": "127.0.0.1:9181"}
    )
    assert fetched.status_code == 200

    page = browser.get("/gateway").get_data(as_text=True)
    assert "No spectr-proxy" not in page
    assert "1 spectr-proxy process fetched its configuration" in page
    assert "<code>127.0.0.1:9181</code>" in page


def test_routes_are_edited_and_deleted_from_the_gateway_page(gateway_app, operator):
    route = operator.post(
        "/api/v1/proxy/routes", json={"name": "docs", "upstreams": ["http://127.0.0.1:9301"]}
    ).get_json()
    browser, page, csrf = _signed_in_page(gateway_app)
    assert f'action="/gateway/routes/{route["id"]}"' in page

    saved = browser.post(
        f"/gateway/routes/{route['id']}",
        data={"csrf_token": csrf, "name": "docs", "hosts": "docs.internal", "path_prefix": "/d",
              "upstreams": "http://127.0.0.1:9302, http://127.0.0.1:9303", "timeout_s": "5"},
    )  # fmt: skip
    assert saved.status_code == 302
    after = operator.get(f"/api/v1/proxy/routes/{route['id']}").get_json()
    assert (after["hosts"], after["path_prefix"], after["timeout_s"]) == (
        ["docs.internal"],
        "/d",
        5.0,
    )
    assert after["upstreams"] == ["http://127.0.0.1:9302", "http://127.0.0.1:9303"]

    refused = browser.post(
        f"/gateway/routes/{route['id']}",
        data={"csrf_token": csrf, "name": "docs", "upstreams": "not a url"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "upstreams[0]" in refused
    assert (
        operator.get(f"/api/v1/proxy/routes/{route['id']}").get_json()["upstreams"]
        == after["upstreams"]
    )

    deleted = browser.post(f"/gateway/routes/{route['id']}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 302
    assert operator.get(f"/api/v1/proxy/routes/{route['id']}").status_code == 404
    with gateway_app.app_context():
        actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"proxy.route.update", "proxy.route.delete"} <= actions


def test_a_proxy_of_another_contract_is_refused_and_shown_so(gateway_app, operator):
    from portal.proxy.config_document import PROXY_CONFIG_CONTRACT

    served = operator.get(
        "/api/v1/proxy/config",
        headers={"X-Spectr-Proxy-Metrics": "127.0.0.1:9182", "Spectr-Proxy-Contract": "1.1"},
    )
    assert served.status_code == 200
    assert served.headers["Spectr-Proxy-Contract"] == PROXY_CONFIG_CONTRACT
    assert "contract" not in served.get_json()  # proxies before contracts refuse unknown fields
    # a proxy from before contracts sends none: it speaks 1.0, and is served
    assert operator.get("/api/v1/proxy/config").status_code == 200

    refused = operator.get(
        "/api/v1/proxy/config",
        headers={"X-Spectr-Proxy-Metrics": "127.0.0.1:9183", "Spectr-Proxy-Contract": "2.0"},
    )
    assert refused.status_code == 409
    message = refused.get_json()["message"]
    assert message.startswith("Incompatible proxy: it speaks config document contract 2.0")
    assert "this portal serves 1.x" in message

    _, page, _ = _signed_in_page(gateway_app)
    assert f"<code>127.0.0.1:9183</code>: {message}" in page.replace("&#39;", "'")
    assert "refused" in page


@pytest.mark.slow
def test_the_previous_proxy_release_follows_todays_portal(
    operator, portal_server, prefix, tmp_path
):
    """Built from git history: the proxy of the last commit before contracts were versioned."""
    import subprocess

    from proxy.tests.llm_standin import StandInServer
    from proxy.tests.proxy_harness import REPO_ROOT, ProxyProcess, client, wait_until
    from tests.hosts.test_agent_contract import previous_release

    source = tmp_path / "previous"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", previous_release(), "proxy"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    assert "CONFIG_CONTRACT" not in (source / "proxy" / "__init__.py").read_text()

    upstream = StandInServer(name="llm").start()
    operator.put("/api/v1/proxy/models", json={"name": "tiny", "replicas": [upstream.url]})
    created = operator.post("/api/v1/proxy/keys", json={"name": "compat"}).get_json()
    token_file = tmp_path / "portal-token"
    token_file.write_text(operator.headers["Authorization"].split(" ", 1)[1])
    proxy = ProxyProcess(
        ["--portal-url", portal_server, "--portal-token-file", str(token_file),
         "--redis-url", REDIS_URL],
        redis_prefix=prefix, source=source,
    ).start()  # fmt: skip
    try:
        with client(proxy, created["key"]) as http:
            body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
            wait_until(lambda: http.post("/v1/chat/completions", json=body).status_code == 200, 15)
    finally:
        proxy.stop()
        upstream.stop()
