"""Streamed completions through a real spectr-proxy: every SSE framing counted and limited alike."""

from __future__ import annotations

import json
import socket
import time

import pytest

from proxy.tests.proxy_harness import client, new_key, wait_until
from proxy.tests.test_proxy_gateway import CHAT, HELLO, gateway_config, key

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FRAMINGS = ["lf", "crlf", "cr", "mixed"]


def stream_body(max_tokens: int, framing: str, include_usage: bool | None = None) -> dict:
    body = {**HELLO, "stream": True, "max_tokens": max_tokens, "x_framing": framing}
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    return body


def data_of(text: str) -> list[str]:
    """Return the data of each event of an SSE body, whatever its line ends."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line[5:].strip() for line in lines if line.startswith("data:")]


def usage_records(redis_client, prefix: str, count: int) -> list[dict]:
    stream = f"{prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) >= count)
    return [fields for _, fields in redis_client.xrange(stream)]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_stream_usage_is_recorded_exactly_in_every_framing(
    framing, upstream, start_proxy, redis_client, redis_prefix
):
    a = upstream("a", chunk_delay_s=0)
    a.split_events = True  # every event in two network chunks, cut between its CR and LF
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]))
    with client(proxy, secret) as http:
        asked = http.post(CHAT, json=stream_body(7, framing, include_usage=True))
        unasked = http.post(CHAT, json=stream_body(5, framing))
    asked_events, unasked_events = data_of(asked.text), data_of(unasked.text)
    # The client that asked for usage gets its chunk; the other never sees the one the proxy
    # asked the model for.
    assert json.loads(asked_events[-2])["usage"]["completion_tokens"] == 7
    assert len(unasked_events) == 6 and "usage" not in unasked.text
    assert unasked_events[-1] == "[DONE]"
    assert a.bodies_seen[1]["stream_options"] == {"include_usage": True}

    records = usage_records(redis_client, redis_prefix, 2)
    expected_prompt = json.loads(asked_events[-2])["usage"]["prompt_tokens"]
    assert [
        (r["tokens_source"], r["prompt_tokens"], r["completion_tokens"], r["status"])
        for r in records
    ] == [("usage", str(expected_prompt), "7", "200"), ("usage", str(expected_prompt), "5", "200")]


@pytest.mark.parametrize("framing", ["lf", "crlf"])
def test_tpm_limit_refuses_streams_alike_in_both_framings(
    framing, upstream, start_proxy, redis_client, redis_prefix
):
    a = upstream("a", chunk_delay_s=0)
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest, tpm=10)]))
    left = 60 - time.time() % 60
    if left < 5:  # keep the per-minute counter inside one window
        time.sleep(left + 0.1)
    with client(proxy, secret) as http:
        first = http.post(CHAT, json=stream_body(8, framing))
        usage_records(redis_client, redis_prefix, 1)
        second = http.post(CHAT, json=stream_body(8, framing))
    assert first.status_code == 200 and data_of(first.text)[-1] == "[DONE]"
    assert second.status_code == 429, second.text
    assert "tokens per minute" in second.json()["error"]["message"]
    tpm_keys = list(redis_client.scan_iter(match=f"{redis_prefix}limit:k1:tpm:*"))
    [counter] = tpm_keys
    spent = usage_records(redis_client, redis_prefix, 2)[0]
    assert redis_client.get(counter) == spent["total_tokens"]
    assert int(spent["completion_tokens"]) == 8


def test_stream_without_usage_is_estimated_and_says_so(
    upstream, start_proxy, redis_client, redis_prefix
):
    a = upstream("a", chunk_delay_s=0, sends_usage=False)  # like llama.cpp's server
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]))
    with client(proxy, secret) as http:
        reply = http.post(CHAT, json=stream_body(6, "crlf"))
    assert data_of(reply.text)[-1] == "[DONE]" and len(data_of(reply.text)) == 7
    [record] = usage_records(redis_client, redis_prefix, 1)
    assert record["tokens_source"] == "estimated"
    assert record["completion_tokens"] == "6"  # one token per content chunk
    assert int(record["prompt_tokens"]) > 0  # from the prompt's length


def test_client_that_closes_after_the_last_event_is_a_success(
    upstream, start_proxy, redis_client, redis_prefix
):
    # The openai client closes once it read `[DONE]`, before the chunked body ends: CI saw a
    # real llama.cpp stream recorded as 499 that way.
    a = upstream("a", chunk_delay_s=0, sends_usage=False)
    a.pause_before_end_s = 1.0
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]))
    with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
        send_stream_request(conn, secret, stream_body(4, "lf"))
        seen = b""
        while b"[DONE]" not in seen:
            seen += conn.recv(65536)
    [record] = usage_records(redis_client, redis_prefix, 1)
    assert (record["status"], record["tokens_source"], record["completion_tokens"]) == (
        "200", "estimated", "4"
    )  # fmt: skip
    wait_until(lambda: proxy.access_log.exists() and proxy.access_log.read_text())
    [entry] = [json.loads(line) for line in proxy.access_log.read_text().splitlines()]
    assert entry["status"] == 200 and "error" not in entry
    metrics = proxy.metrics()
    assert 'key="k1",model="llama",status="200",target="gateway"} 1.0' in metrics
    assert "client_cancelled" not in metrics and 'status="499"' not in metrics


def send_stream_request(conn: socket.socket, secret: str, body: dict) -> None:
    data = json.dumps(body).encode()
    conn.sendall(
        b"POST %s HTTP/1.1\r\nHost: llm\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (CHAT.encode(), secret.encode(), len(data), data)
    )


def test_client_that_leaves_mid_stream_is_recorded_as_a_cancel(
    upstream, start_proxy, redis_client, redis_prefix
):
    a = upstream("a", chunk_delay_s=0.1)
    secret, digest = new_key()
    proxy = start_proxy(gateway_config([a], [key("k1", digest)]))
    with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
        send_stream_request(conn, secret, stream_body(40, "crlf"))
        seen = b""
        while seen.count(b'"content"') < 3:  # three text chunks arrived: give up
            seen += conn.recv(65536)
    [record] = usage_records(redis_client, redis_prefix, 1)
    assert (record["status"], record["tokens_source"]) == ("499", "estimated")
    assert 3 <= int(record["completion_tokens"]) < 40  # the chunks that went by, not the rest
    wait_until(lambda: proxy.access_log.exists() and proxy.access_log.read_text())
    [entry] = [json.loads(line) for line in proxy.access_log.read_text().splitlines()]
    assert (entry["status"], entry["error"]) == (499, "client_cancelled")
    metrics = proxy.metrics()
    assert 'key="k1",model="llama",status="499",target="gateway"} 1.0' in metrics
    assert 'reason="client_cancelled",target="gateway"} 1.0' in metrics
    assert "upstream_error" not in metrics
