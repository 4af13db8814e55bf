"""The LLM gateway in real spectr-proxy processes with real Redis and stand-in model servers."""

from __future__ import annotations

import threading
import time

import pytest

from proxy.tests.proxy_harness import client, new_key, wait_for_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CHAT = "/v1/chat/completions"
HELLO = {"model": "llama", "messages": [{"role": "user", "content": "hello there"}]}


def gateway_config(servers: list, keys: list[dict], **models_extra) -> dict:
    return {
        "version": 1,
        "etag": "v1",
        "models": [
            {"name": "llama", "aliases": ["l3"], "upstream_model": "llama-3-8b",
             "replicas": [{"url": s.url, "id": s.name} for s in servers], **models_extra},
            {"name": "secret-model", "replicas": [{"url": servers[0].url}]},
            {"name": "down-model", "replicas": [{"url": servers[0].url, "health": "unhealthy"}]},
        ],
        "keys": keys,
    }  # fmt: skip


def key(key_id: str, sha256: str, **limits) -> dict:
    return {"id": key_id, "sha256": sha256, "user": f"user-{key_id}",
            "models": ["llama", "down-model"], **limits}  # fmt: skip


def wait_for_next_minute_if_close() -> None:
    """Keep a per-minute counter test inside one minute window."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)


def test_every_gateway_error_has_openai_shape(upstream, start_proxy):
    a = upstream("a")
    good, good_hash = new_key()
    old, old_hash = new_key()
    proxy = start_proxy(gateway_config([a], [
        key("good", good_hash),
        key("old", old_hash, expires_at="2020-01-01T00:00:00Z"),
    ]))  # fmt: skip
    with client(proxy) as anon, client(proxy, good) as http, client(proxy, old) as expired:
        cases = {
            "missing_api_key": anon.post(CHAT, json=HELLO),
            "invalid_api_key": anon.post(CHAT, json=HELLO, headers={"authorization": "Bearer x"}),
            "expired_api_key": expired.post(CHAT, json=HELLO),
            "model_not_allowed": http.post(CHAT, json={**HELLO, "model": "secret-model"}),
            "model_not_found": http.post(CHAT, json={**HELLO, "model": "gpt-9"}),
            "invalid_request": http.post(CHAT, content=b"not json"),
            "unknown_endpoint": http.get("/v1/nonsense"),
            "no_healthy_replica": http.post(CHAT, json={**HELLO, "model": "down-model"}),
        }
    statuses = {code: reply.status_code for code, reply in cases.items()}
    assert statuses == {
        "missing_api_key": 401, "invalid_api_key": 401, "expired_api_key": 401,
        "model_not_allowed": 403, "model_not_found": 404, "invalid_request": 400,
        "unknown_endpoint": 404, "no_healthy_replica": 503,
    }  # fmt: skip
    for code, reply in cases.items():
        error = reply.json()["error"]
        assert error["code"] == code
        assert error["message"] and error["type"]
    assert a.models_seen == []  # nothing refused ever reached the model server


def test_alias_routes_to_model_and_usage_lands_in_stream(
    upstream, start_proxy, redis_client, redis_prefix
):
    a, b = upstream("a"), upstream("b")
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a, b], [key("k1", digest)]))
    with client(proxy, secret) as http:
        models = http.get("/v1/models").json()
        chat = http.post(CHAT, json={**HELLO, "model": "l3", "max_tokens": 3})
        embed = http.post("/v1/embeddings", json={"model": "llama", "input": "one two"})

    assert {m["id"] for m in models["data"]} == {"llama", "l3", "down-model"}
    assert chat.status_code == 200
    assert chat.json()["usage"]["completion_tokens"] == 3
    assert embed.status_code == 200
    assert a.models_seen + b.models_seen == ["llama-3-8b", "llama-3-8b"]

    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) == 2)
    records = [fields for _, fields in redis_client.xrange(stream)]
    assert records[0]["key_id"] == "k1"
    assert records[0]["user"] == "user-k1"
    assert records[0]["model"] == "llama"
    assert records[0]["endpoint"] == CHAT
    assert records[0]["status"] == "200"
    assert records[0]["completion_tokens"] == "3"
    assert records[0]["prompt_tokens"] == str(chat.json()["usage"]["prompt_tokens"])
    assert records[0]["tokens_source"] == "usage"
    assert records[0]["replica"] in (a.name, b.name)
    assert float(records[0]["latency_ms"]) > 0
    assert records[1]["endpoint"] == "/v1/embeddings"
    assert (
        'spectr_proxy_tokens_total{key="k1",kind="completion",model="llama"} 3.0' in proxy.metrics()
    )


def test_streamed_completion_tokens_are_counted(upstream, start_proxy, redis_client, redis_prefix):
    a = upstream("a", chunk_delay_s=0.01)
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]))
    with client(proxy, secret) as http:
        plain = http.post(CHAT, json={**HELLO, "stream": True, "max_tokens": 5})
        with_usage = http.post(CHAT, json={**HELLO, "stream": True, "max_tokens": 6,
                                           "stream_options": {"include_usage": True}})  # fmt: skip
    assert plain.text.count("data:") == 6  # five chunks and [DONE], passed through untouched
    assert with_usage.headers["content-type"].startswith("text/event-stream")

    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) == 2)
    counted, reported = [fields for _, fields in redis_client.xrange(stream)]
    # The proxy asked the model for usage on the client's behalf: exact counts for both.
    assert (counted["stream"], counted["tokens_source"], counted["completion_tokens"]) == (
        "1",
        "usage",
        "5",
    )
    assert (reported["tokens_source"], reported["completion_tokens"]) == ("usage", "6")
    assert int(reported["prompt_tokens"]) > 0


def test_rpm_limit_is_shared_by_two_proxies(upstream, start_proxy):
    a = upstream("a")
    secret, digest = new_key()
    config = gateway_config([a], [key("k1", digest, rpm=4)])
    first, second = start_proxy(config), start_proxy(config)
    wait_for_next_minute_if_close()
    with client(first, secret) as one, client(second, secret) as two:
        statuses = [http.post(CHAT, json=HELLO).status_code for http in (one, two, one, two)]
        over_first, over_second = one.post(CHAT, json=HELLO), two.post(CHAT, json=HELLO)
    assert statuses == [200, 200, 200, 200]
    for reply in (over_first, over_second):
        assert reply.status_code == 429
        assert reply.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(reply.headers["retry-after"]) <= 60


def test_token_budget_stops_key_once_spent(upstream, start_proxy, redis_client, redis_prefix):
    a = upstream("a")
    secret, digest = new_key()
    budget = {"tokens": 10, "period": "day"}
    proxy = start_proxy(gateway_config([a], [key("k1", digest, budget=budget)]))
    with client(proxy, secret) as http:
        spend = http.post(CHAT, json={**HELLO, "max_tokens": 12})
        wait_until(lambda: redis_client.xlen(f"{redis_prefix}usage") == 1)
        wait_until(lambda: http.post(CHAT, json=HELLO).status_code == 429)
        refused = http.post(CHAT, json=HELLO)
    assert spend.status_code == 200
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert int(refused.headers["retry-after"]) <= 86400


def test_tpm_limit_refuses_after_tokens_used(upstream, start_proxy, redis_client, redis_prefix):
    a = upstream("a")
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest, tpm=20)]))
    wait_for_next_minute_if_close()
    with client(proxy, secret) as http:
        spend = http.post(CHAT, json={**HELLO, "max_tokens": 25})
        wait_until(lambda: http.post(CHAT, json=HELLO).status_code == 429)
        refused = http.post(CHAT, json=HELLO)
    assert spend.status_code == 200
    assert "tokens per minute" in refused.json()["error"]["message"]


def team_config(servers: list, keys: list[dict], **quotas: int) -> dict:
    """Keys of project '7' (team-a) with these gateway quotas."""
    config = gateway_config(servers, [{**k, "project": "7"} for k in keys])
    return {**config, "projects": [{"id": "7", "name": "team-a", **quotas}]}


@pytest.mark.parametrize("path", ["lean", "mitmproxy"])
def test_two_keys_of_a_project_share_its_rpm(
    upstream, start_proxy, redis_client, redis_prefix, path
):
    a = upstream("a")
    (one, one_hash), (two, two_hash) = new_key(), new_key()
    config = team_config([a], [key("k1", one_hash), key("k2", two_hash)], rpm=3)
    proxy = start_proxy(config, args=["--gateway-path", path])
    wait_for_next_minute_if_close()
    with client(proxy, one) as first, client(proxy, two) as second:
        statuses = [http.post(CHAT, json=HELLO).status_code for http in (first, second, first)]
        refused = second.post(CHAT, json=HELLO)  # k2's second request, the project's fourth
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("project_quota_exceeded", "rate_limit_error")
    assert error["message"] == (
        "Project 'team-a' is over its gateway quota of 3 requests per minute (rpm)."
    )
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert len(a.models_seen) == 3  # the refused request never reached the model

    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) == 4)
    records = [fields for _, fields in redis_client.xrange(stream)]
    assert [(r["key_id"], r["project"], r["status"]) for r in records] == [
        ("k1", "7", "200"), ("k2", "7", "200"), ("k1", "7", "200"), ("k2", "7", "429"),
    ]  # fmt: skip


def test_two_keys_of_a_project_spend_its_tokens_per_day(
    upstream, start_proxy, redis_client, redis_prefix
):
    a = upstream("a")
    (one, one_hash), (two, two_hash) = new_key(), new_key()
    config = team_config([a], [key("k1", one_hash), key("k2", two_hash)], tokens_per_day=20)
    proxy = start_proxy(config)
    with client(proxy, one) as first, client(proxy, two) as second:
        spend = first.post(CHAT, json={**HELLO, "max_tokens": 25})
        # The usage record and the project's counters are written by one script call.
        wait_until(lambda: redis_client.xlen(f"{redis_prefix}usage") == 1)
        refused = second.post(CHAT, json=HELLO)  # k2 used nothing itself
    assert spend.status_code == 200
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "project_quota_exceeded"
    assert error["message"] == (
        "Project 'team-a' has spent its gateway quota of 20 tokens per day (tokens_per_day)."
    )
    assert 1 <= int(refused.headers["retry-after"]) <= 86400
    (_, record), *_ = redis_client.xrange(f"{redis_prefix}usage")
    day = time.strftime("d%Y%m%d", time.gmtime(float(record["ts"])))  # the request's UTC day
    spent = redis_client.get(f"{redis_prefix}limit-project:7:budget:{day}")
    assert int(spent) == spend.json()["usage"]["total_tokens"]


def test_workers_share_one_port_and_one_usage_stream(
    upstream, start_proxy, redis_client, redis_prefix
):
    a = upstream("a")
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]), args=["--workers", "2"])
    # The second worker has joined the port once its own admin port answers (port + 1): on a
    # loaded machine every connection went to the first one before that.
    wait_for_port(proxy.admin_port + 1)
    for _ in range(20):  # a new connection each time, so the kernel spreads them over workers
        with client(proxy, secret) as http:
            assert http.post(CHAT, json=HELLO).status_code == 200
    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) == 20)
    writers = {fields["proxy"] for _, fields in redis_client.xrange(stream)}
    assert len(writers) == 2


def test_gateway_stream_reaches_client_before_the_model_finishes(upstream, start_proxy):
    a = upstream("a", chunk_delay_s=0.01)
    a.stream_gate = threading.Event()
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]))
    body = {**HELLO, "stream": True, "max_tokens": 3}
    with client(proxy, secret) as http, http.stream("POST", CHAT, json=body) as reply:
        lines = reply.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        # The model holds the rest until the first chunk got here: the usage tap must not buffer.
        assert not a.stream_gate.is_set()
        a.stream_gate.set()
        rest = [line for line in lines if line.startswith("data:")]
    assert "spectr" in first
    assert rest[-1] == "data: [DONE]" and len(rest) == 3
