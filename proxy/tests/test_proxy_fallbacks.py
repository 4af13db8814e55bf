"""Retries, fallback models and the half-open breaker, through a real spectr-proxy process.

The upstreams are stand-in LLM servers (a real model needs a GPU this machine lacks) that answer
as each test's script says: a normal completion, an error status, no answer at all, a stream
cut after its first event, or a completion held until the test lets it go.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from proxy.tests.llm_standin import StandInHandler, StandInServer
from proxy.tests.proxy_harness import client, free_port, new_key, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CHAT = "/v1/chat/completions"
GATEWAY = {"host": "llm.test"}


class ScriptedHandler(StandInHandler):
    """Answer each completion as the server's script says; "ok" is the stand-in's own answer."""

    server: ScriptedServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.loads(raw or b"{}")
        step = self.server.next_step()
        self.server.seen.append((step, body.get("model")))
        self.server.peers.append(self.client_address)
        if step == "hold":  # a good answer, once the test lets it go
            self.server.release.wait(15)
            step = "ok"
        if step == "ok":
            self._completion(urlsplit(self.path).path, body)
        elif step == "hang":  # never a byte: the proxy's timeout closes the connection
            self.server.release.wait(15)
            self.close_connection = True
        elif step == "cut":
            self._cut_stream()
        else:
            self._json(int(step), {"error": {"message": f"scripted {step}", "code": step}})

    def _cut_stream(self) -> None:
        """Send a stream's headers and first event, then drop the connection."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-replica", self.server.name)
        self.end_headers()
        self._line_ends = itertools.cycle(["\n"])
        delta = {"content": "spectr "}
        self._event({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]})
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


class ScriptedServer(StandInServer):
    """A stand-in whose completions follow `script` (steps taken in order), then `default`."""

    def __init__(self, name: str, script: list[str], default: str) -> None:
        super().__init__(name=name)
        self.RequestHandlerClass = ScriptedHandler
        self.script = list(script)
        self.default = default
        self.seen: list[tuple[str, str | None]] = []  # (step, the body's model) per request
        self.peers: list[tuple[str, int]] = []  # the connection each request came on
        self.release = threading.Event()
        self._lock = threading.Lock()

    def next_step(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def stop(self) -> None:
        self.release.set()
        super().stop()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(name: str, *script: str, default: str = "ok") -> ScriptedServer:
        server = ScriptedServer(name, list(script), default).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def model(name: str, *servers: StandInServer, **extra: object) -> dict:
    replicas = [{"url": s.url, "id": s.name} for s in servers]
    return {"name": name, "replicas": replicas, "strategy": "round_robin", **extra}


def document(models: list[dict], keys: list[dict], **gateway: object) -> dict:
    return {
        "version": 1,
        "gateway": {"hosts": ["llm.test"], "timeout_s": 5, "retries": 1, **gateway},
        "models": models,
        "keys": keys,
    }


def chat(http: httpx.Client, name: str, **extra: object) -> httpx.Response:
    body = {"model": name, "messages": [{"role": "user", "content": "hello"}], **extra}
    return http.post(CHAT, json=body, headers=GATEWAY)


def usage_records(redis_client, redis_prefix: str, count: int) -> list[dict]:
    stream = f"{redis_prefix}usage"
    wait_until(lambda: redis_client.xlen(stream) >= count)
    return [fields for _, fields in redis_client.xrange(stream)]


def access_log(proxy) -> list[dict]:
    return [json.loads(line) for line in proxy.access_log.read_text().splitlines()]


def error_code(reply: httpx.Response) -> str:
    return reply.json()["error"]["code"]


def test_a_5xx_answer_is_retried_on_another_replica(
    scripted, start_proxy, redis_client, redis_prefix
):
    a500, a503, b = scripted("a500", default="500"), scripted("a503", default="503"), scripted("b")
    models = [model("m500", a500, b), model("m503", a503, b)]
    secret, digest = new_key()
    proxy = start_proxy(document(models, [{"id": "k", "sha256": digest}]))
    with client(proxy, secret) as http:
        replies = [chat(http, "m500"), chat(http, "m503")]

    assert [(r.status_code, r.headers["x-replica"]) for r in replies] == [(200, "b")] * 2
    assert all("x-spectr-fallback-from" not in r.headers for r in replies)
    assert (a500.seen, a503.seen) == ([("500", "m500")], [("503", "m503")])
    records = usage_records(redis_client, redis_prefix, 2)
    assert [(r["model"], r["replica"], r["status"]) for r in records] == [
        ("m500", "b", "200"),
        ("m503", "b", "200"),
    ]
    assert all("fallback_from" not in r for r in records)
    assert [(e["status"], e["replica"], e["attempts"]) for e in access_log(proxy)] == [
        (200, "b", 2)
    ] * 2
    metrics = proxy.metrics()
    for name in ("m500", "m503"):
        assert f'spectr_proxy_upstream_retries_total{{model="{name}",target="gateway"}} 1.0' in (
            metrics
        )


def test_a_replica_that_does_not_answer_in_time_is_retried_on_another(scripted, start_proxy):
    a, b = scripted("a", default="hang"), scripted("b")
    secret, digest = new_key()
    proxy = start_proxy(
        document([model("m1", a, b)], [{"id": "k", "sha256": digest}], timeout_s=0.5)
    )
    with client(proxy, secret) as http:
        reply = chat(http, "m1")
        # The replica that timed out is skipped for its down period: no second wait.
        again = chat(http, "m1")

    assert reply.status_code == 200, reply.text
    assert reply.headers["x-replica"] == "b"
    assert again.headers["x-replica"] == "b"
    assert [step for step, _ in a.seen] == ["hang"]


def test_a_stream_answered_503_before_any_byte_is_retried(scripted, start_proxy):
    a, b = scripted("a", default="503"), scripted("b")
    secret, digest = new_key()
    proxy = start_proxy(document([model("m1", a, b)], [{"id": "k", "sha256": digest}]))
    body = {"model": "m1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with (
        client(proxy, secret) as http,
        http.stream("POST", CHAT, json=body, headers=GATEWAY) as reply,
    ):
        lines = [line for line in reply.iter_lines() if line.startswith("data:")]

    assert reply.status_code == 200
    assert reply.headers["x-replica"] == "b"
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert [step for step, _ in a.seen] == ["503"]


def test_a_stream_that_failed_after_its_first_bytes_is_not_retried(scripted, start_proxy):
    a, b = scripted("a", default="cut"), scripted("b")
    secret, digest = new_key()
    proxy = start_proxy(document([model("m1", a, b)], [{"id": "k", "sha256": digest}]))
    body = {"model": "m1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    received: list[str] = []
    with client(proxy, secret) as http:
        with (
            pytest.raises(httpx.RemoteProtocolError),
            http.stream("POST", CHAT, json=body, headers=GATEWAY) as reply,
        ):
            for line in reply.iter_lines():
                received.append(line)
        status = reply.status_code
        after = chat(http, "m1")  # the gateway keeps serving

    assert status == 200
    assert any("spectr" in line for line in received)
    assert [step for step, _ in a.seen] == ["cut"]
    assert b.seen == [("ok", "m1")]  # only the request after it; the cut stream went nowhere else
    assert after.status_code == 200


def test_a_model_whose_replicas_all_fail_falls_back_to_the_next_model(
    scripted, start_proxy, redis_client, redis_prefix
):
    failing = {}  # model -> its two replicas, failing the same way
    for failure, step in (("503", "503"), ("429", "429"), ("timeout", "hang")):
        failing[f"m-{failure}"] = [scripted(f"{failure}-{i}", default=step) for i in (1, 2)]
    b = scripted("b")
    models = [model(name, *servers, fallbacks=["m2"]) for name, servers in failing.items()]
    # Nothing listens on a freed port.
    gone = [{"url": f"http://127.0.0.1:{free_port()}", "id": f"gone-{i}"} for i in (1, 2)]
    models.append({"name": "m-refused", "replicas": gone, "fallbacks": ["m2"]})
    models.append(model("m2", b, upstream_model="org/m2-instruct"))
    secret, digest = new_key()
    proxy = start_proxy(document(models, [{"id": "k", "sha256": digest}], timeout_s=0.5))
    asked = [*failing, "m-refused"]
    with client(proxy, secret) as http:
        replies = [chat(http, name) for name in asked]

    for name, reply in zip(asked, replies, strict=True):
        assert reply.status_code == 200, (name, reply.text)
        assert reply.headers["x-replica"] == "b"
        assert reply.headers["x-spectr-fallback-from"] == name
    # Both replicas of each model were tried first; the body named the fallback's upstream model.
    assert all(len(one.seen) == 1 for servers in failing.values() for one in servers)
    assert b.seen == [("ok", "org/m2-instruct")] * len(asked)
    records = usage_records(redis_client, redis_prefix, len(asked))
    assert [(r["model"], r["fallback_from"], r["status"], r["replica"]) for r in records] == [
        ("m2", name, "200", "b") for name in asked
    ]
    assert all(int(r["total_tokens"]) > 0 for r in records)
    entries = access_log(proxy)
    assert [(e["model"], e["fallback_from"], e["status"]) for e in entries] == [
        ("m2", name, 200) for name in asked
    ]
    metrics = proxy.metrics()
    for name in asked:
        assert f'spectr_proxy_fallbacks_total{{fallback_from="{name}",model="m2"}} 1.0' in metrics
    assert 'spectr_proxy_requests_total{key="k",model="m2",status="200",target="gateway"} 4.0' in (
        metrics
    )


def test_a_fallback_served_by_the_same_server_reuses_its_connection(scripted, start_proxy):
    # One server answers both models: the fallback's request goes down the kept-alive
    # connection that just carried the 429.
    a = scripted("a", "429", default="ok")
    models = [model("m1", a, fallbacks=["m2"]), model("m2", a, upstream_model="m2-upstream")]
    secret, digest = new_key()
    proxy = start_proxy(document(models, [{"id": "k", "sha256": digest}], retries=0))
    with client(proxy, secret) as http:
        replies = [chat(http, "m1") for _ in range(2)]

    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].headers["x-spectr-fallback-from"] == "m1"
    assert "x-spectr-fallback-from" not in replies[1].headers  # a 429 leaves m1 in service
    assert a.seen == [("429", "m1"), ("ok", "m2-upstream"), ("ok", "m1")]
    assert len(set(a.peers)) == 1


def test_fallbacks_the_key_may_not_use_are_skipped(scripted, start_proxy):
    a = scripted("a", default="503")
    b, c = scripted("b"), scripted("c")
    models = [model("m1", a, fallbacks=["m2", "m3"]), model("m2", b), model("m3", c)]
    only_m1, only_m1_digest = new_key()
    m1_and_m3, m1_and_m3_digest = new_key()
    keys = [
        {"id": "only-m1", "sha256": only_m1_digest, "models": ["m1"]},
        {"id": "m1-m3", "sha256": m1_and_m3_digest, "models": ["m1", "m3"]},
    ]
    proxy = start_proxy(document(models, keys, retries=0))
    with client(proxy, only_m1) as http:
        refused = chat(http, "m1")
    with client(proxy, m1_and_m3) as http:
        third = chat(http, "m1")

    # No fallback this key may use: the replica's own answer goes back unchanged.
    assert refused.status_code == 503
    assert error_code(refused) == "503"
    assert "x-spectr-fallback-from" not in refused.headers
    assert third.status_code == 200
    assert third.headers["x-replica"] == "c"
    assert third.headers["x-spectr-fallback-from"] == "m1"
    assert b.seen == []


def test_a_model_with_no_replica_up_goes_straight_to_its_fallback(scripted, start_proxy):
    b = scripted("b")
    gone = {"url": f"http://127.0.0.1:{free_port()}", "id": "gone", "health": "unhealthy"}
    models = [{"name": "m1", "replicas": [gone], "fallbacks": ["m2"]}, model("m2", b)]
    secret, digest = new_key()
    proxy = start_proxy(document(models, [{"id": "k", "sha256": digest}]))
    with client(proxy, secret) as http:
        reply = chat(http, "m1")
    assert reply.status_code == 200
    assert reply.headers["x-spectr-fallback-from"] == "m1"


def test_no_healthy_replica_says_when_to_retry(start_proxy):
    gone = StandInServer(name="gone")  # bound, then closed: its port refuses connections
    gone.server_close()
    secret, digest = new_key()
    proxy = start_proxy(single_replica_document(gone, digest, down_for_s=3))
    with client(proxy, secret) as http:
        refused = chat(http, "m1")  # marks the replica down for 3 s
        unavailable = chat(http, "m1")

    assert (refused.status_code, error_code(refused)) == (502, "upstream_unreachable")
    assert (unavailable.status_code, error_code(unavailable)) == (503, "no_healthy_replica")
    assert 1 <= int(unavailable.headers["retry-after"]) <= 3


def probe_when_down_period_ends(http: httpx.Client) -> dict:
    """Send requests in the background until one is not refused as no_healthy_replica."""
    outcome: dict = {}

    def send() -> None:
        while True:
            reply = chat(http, "m1")
            if reply.status_code != 503 or error_code(reply) != "no_healthy_replica":
                outcome["reply"] = reply
                return
            time.sleep(0.05)  # polling pace, not a measurement

    outcome["thread"] = thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return outcome


def single_replica_document(server: StandInServer, digest: str, down_for_s: float) -> dict:
    doc = document([{"name": "m1", "pool": "p"}], [{"id": "k", "sha256": digest}], retries=0)
    doc["pools"] = [
        {
            "name": "p",
            "replicas": [{"url": server.url, "id": server.name}],
            "down_for_s": down_for_s,
        }
    ]
    return doc


def test_half_open_replica_gets_one_probe_and_recovers_when_it_succeeds(scripted, start_proxy):
    a = scripted("a", "503", "hold", default="ok")
    secret, digest = new_key()
    proxy = start_proxy(single_replica_document(a, digest, down_for_s=1))
    with client(proxy, secret) as http, client(proxy, secret) as other:
        failed = chat(http, "m1")  # opens the breaker
        assert (failed.status_code, error_code(failed)) == (503, "503")
        closed = chat(other, "m1")
        assert error_code(closed) == "no_healthy_replica"

        probe = probe_when_down_period_ends(http)
        wait_until(lambda: len(a.seen) == 2)  # the probe reached the replica, which holds it
        while_probing = [chat(other, "m1") for _ in range(3)]
        assert [error_code(r) for r in while_probing] == ["no_healthy_replica"] * 3
        assert len(a.seen) == 2  # exactly one request went through
        a.release.set()
        probe["thread"].join(15)
        after = [chat(other, "m1") for _ in range(3)]

    assert probe["reply"].status_code == 200
    assert [r.status_code for r in after] == [200] * 3  # the breaker closed
    assert [step for step, _ in a.seen] == ["503", "hold", "ok", "ok", "ok"]


def test_a_failed_probe_doubles_the_down_period(scripted, start_proxy):
    a = scripted("a", default="503")
    secret, digest = new_key()
    proxy = start_proxy(single_replica_document(a, digest, down_for_s=2))
    with client(proxy, secret) as http:
        chat(http, "m1")  # opens the breaker for 2 s
        first = chat(http, "m1")
        probe = probe_when_down_period_ends(http)
        probe["thread"].join(15)
        after_probe = chat(http, "m1")

    assert int(first.headers["retry-after"]) <= 2
    assert error_code(probe["reply"]) == "503"  # the probe went to the replica and failed
    assert len(a.seen) == 2
    # Open again, now for 4 s: more than the first period is left.
    assert error_code(after_probe) == "no_healthy_replica"
    assert int(after_probe.headers["retry-after"]) > 2


def test_routes_do_not_retry_5xx_answers(scripted, start_proxy):
    a, b = scripted("a", default="503"), scripted("b")
    replicas = [{"url": s.url, "id": s.name} for s in (a, b)]
    proxy = start_proxy({"version": 1, "pools": [{"name": "web", "replicas": replicas}],
                         "routes": [{"name": "web", "pool": "web", "retries": 1}]})  # fmt: skip
    with client(proxy) as http:
        reply = http.post("/submit", json={"model": "x"})
    # A route's request may have had effects: its answer goes back, whatever its status.
    assert reply.status_code == 503
    assert reply.headers["x-replica"] == "a"
    assert b.seen == []
