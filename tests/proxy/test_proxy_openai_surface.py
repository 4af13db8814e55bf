"""The whole OpenAI-shaped surface of the gateway, driven by the official `openai` client against
a real spectr-proxy process, real Redis and stand-in model servers (tests/proxy/llm_standin.py:
no real runtime can run here). Each call's answer and its usage record in Redis are checked.

One proxy serves the whole module (starting one per test would cost ~2 s each on this 2-core
machine); every call carries its own X-Request-Id, which the usage record, the access log and
the stand-in's log of upstream requests all hold, so tests find their own traffic and stay
independent of each other's order.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from openai import AsyncOpenAI, OpenAI

from tests.proxy.llm_standin import StandInServer
from tests.proxy.llm_standin_surface import SPEECH_CHUNKS
from tests.proxy.proxy_harness import REDIS_URL, ProxyProcess, new_key, wait_until, write_config
from tests.proxy.test_proxy_gateway import key, wait_for_next_minute_if_close

pytestmark = [pytest.mark.slow, pytest.mark.redis]

AUDIO = b"RIFF" + bytes(range(256)) * 4  # stands in for a WAV clip: any bytes, some not UTF-8


@dataclass
class Surface:
    proxy: ProxyProcess
    a: StandInServer  # serves every endpoint
    b: StandInServer  # the second replica of the "store" model
    bare: StandInServer  # a runtime that serves chat only
    prefix: str
    secrets: dict[str, str]
    opened: list[OpenAI] = field(default_factory=list)  # closed after each test

    def client(self, key_id: str = "main", **options: Any) -> OpenAI:
        options = {"max_retries": 0, **options}  # tests see each answer as it came
        client = OpenAI(
            base_url=f"{self.proxy.url}/v1", api_key=self.secrets[key_id],
            http_client=httpx.Client(trust_env=False), **options,
        )  # fmt: skip
        self.opened.append(client)
        return client

    def async_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=f"{self.proxy.url}/v1", api_key=self.secrets["main"],
            http_client=httpx.AsyncClient(trust_env=False), max_retries=0,
        )  # fmt: skip

    def http(self, key_id: str = "main") -> httpx.Client:
        headers = {"authorization": f"Bearer {self.secrets[key_id]}"}
        return httpx.Client(base_url=self.proxy.url, headers=headers, trust_env=False, timeout=15)


def surface_config(a: StandInServer, b: StandInServer, bare: StandInServer, digests: dict) -> dict:
    models = [
        {"name": "llama", "aliases": ["l3", "meta/llama-3"], "upstream_model": "llama-3-8b",
         "replicas": [{"url": a.url, "id": "a"}]},
        {"name": "whisper", "replicas": [{"url": a.url, "id": "a"}]},  # upstream name = its name
        {"name": "store", "replicas": [{"url": a.url, "id": "a"}, {"url": b.url, "id": "b"}],
         "strategy": "round_robin"},
        {"name": "bare-model", "replicas": [{"url": bare.url, "id": "bare"}]},
        {"name": "secret-model", "replicas": [{"url": a.url, "id": "a"}]},
    ]  # fmt: skip
    keys = [
        {**key("main", digests["main"]), "models": ["llama", "whisper", "store", "bare-model"]},
        key("tpm", digests["tpm"], tpm=10) | {"models": ["llama"]},
        key("solo", digests["solo"]) | {"models": ["llama"]},
    ]
    return {"version": 1, "etag": "surface", "models": models, "keys": keys}


@pytest.fixture(scope="module")
def surface() -> Iterator[Surface]:
    a, b, bare = (StandInServer(name=name).start() for name in ("a", "b", "bare"))
    for server in (a, b, bare):
        server.keep_requests = True
    bare.unserved = {"/v1/audio/speech", "/v1/responses"}
    secrets, digests = {}, {}
    for key_id in ("main", "tpm", "solo"):
        secrets[key_id], digests[key_id] = new_key()
    prefix = f"spectr-test-{uuid.uuid4().hex[:12]}:"
    config_file = Path(tempfile.mkdtemp(prefix="spectr-surface-")) / "proxy.json"
    write_config(config_file, surface_config(a, b, bare, digests))
    proxy = ProxyProcess(
        args=["--config-file", str(config_file), "--redis-url", REDIS_URL], redis_prefix=prefix
    ).start()
    yield Surface(proxy, a, b, bare, prefix, secrets)
    proxy.stop()
    for server in (a, b, bare):
        server.stop()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(autouse=True)
def close_clients(surface: Surface) -> Iterator[None]:
    yield
    while surface.opened:
        surface.opened.pop().close()


def call_id() -> str:
    return f"surface-{uuid.uuid4().hex[:16]}"


def tagged(request_id: str) -> dict[str, Any]:
    """Options of an openai call that carry this request id."""
    return {"extra_headers": {"X-Request-Id": request_id}}


def record(redis_client: redis.Redis, surface: Surface, request_id: str) -> dict[str, str]:
    """Return the usage record of one request, once the proxy wrote it."""
    found: list[dict[str, str]] = []

    def written() -> bool:
        entries = redis_client.xrange(f"{surface.prefix}usage")
        found[:] = [f for _, f in entries if f["x_request_id"] == request_id]  # type: ignore[index]
        return bool(found)

    wait_until(written)
    [only] = found
    return only


def upstream_request(server: StandInServer, request_id: str) -> tuple[str, dict[str, str], bytes]:
    """Return (path, headers in lower case, body) of the request a replica got for this id."""
    seen = [
        (path, {k.lower(): v for k, v in headers.items()}, body)
        for _, path, headers, body in server.requests_seen
        if headers.get("x-request-id", headers.get("X-Request-Id")) == request_id
    ]
    [only] = seen
    return only


def tokens(entry: dict[str, str]) -> tuple[str, str, str, str, str]:
    return (
        entry["endpoint"], entry["status"], entry["prompt_tokens"], entry["completion_tokens"],
        entry["tokens_source"],
    )  # fmt: skip


def test_models_retrieve_shows_models_the_key_may_use(surface):
    client = surface.client()
    assert client.models.retrieve("llama").id == "llama"
    assert client.models.retrieve("l3").model_dump()["owned_by"] == "spectr"
    assert client.models.retrieve("meta/llama-3").id == "meta/llama-3"  # sent as meta%2Fllama-3
    for hidden in ("secret-model", "gpt-9"):
        with pytest.raises(openai.NotFoundError) as refused:
            client.models.retrieve(hidden)
        assert refused.value.body["code"] == "model_not_found"  # type: ignore[index]
    listed = {model.id for model in client.models.list()}
    assert "secret-model" not in listed and {"llama", "l3", "whisper"} <= listed


def test_chat_completions_and_embeddings(surface, redis_client):
    client, ids = surface.client(), [call_id() for _ in range(3)]
    messages = [{"role": "user", "content": "hello there"}]
    chat = client.chat.completions.create(
        model="l3", messages=messages, max_tokens=3, **tagged(ids[0])
    )
    completion = client.completions.create(
        model="llama", prompt="once upon", max_tokens=2, **tagged(ids[1])
    )
    embedding = client.embeddings.create(model="llama", input="one two", **tagged(ids[2]))
    assert chat.choices[0].message.content == "spectr routes every"
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    assert embedding.data[0].embedding == [0.1, 0.2]
    assert [tokens(record(redis_client, surface, i)) for i in ids] == [
        ("/v1/chat/completions", "200", str(chat.usage.prompt_tokens), "3", "usage"),  # type: ignore[union-attr]
        ("/v1/completions", "200", str(completion.usage.prompt_tokens), "2", "usage"),
        ("/v1/embeddings", "200", str(embedding.usage.prompt_tokens), "0", "usage"),
    ]
    assert json.loads(upstream_request(surface.a, ids[0])[2])["model"] == "llama-3-8b"


def test_responses_create(surface, redis_client):
    request_id = call_id()
    response = surface.client().responses.create(
        model="l3", input="hello there", max_output_tokens=5, **tagged(request_id)
    )
    assert response.output_text == "spectr routes every token through"
    assert response.usage is not None and response.usage.output_tokens == 5
    entry = record(redis_client, surface, request_id)
    assert tokens(entry) == (
        "/v1/responses", "200", str(response.usage.input_tokens), "5", "usage"
    )  # fmt: skip
    assert (entry["model"], entry["stream"], entry["replica"]) == ("llama", "0", "a")
    assert json.loads(upstream_request(surface.a, request_id)[2])["model"] == "llama-3-8b"


def test_responses_async_create_and_stream(surface, redis_client):
    plain_id, stream_id = call_id(), call_id()

    async def use_async_client() -> tuple[Any, list[Any]]:
        async with surface.async_client() as client:
            response = await client.responses.create(
                model="llama", input="hi", max_output_tokens=3, **tagged(plain_id)
            )
            stream = await client.responses.create(
                model="llama", input="hi", max_output_tokens=2, stream=True, **tagged(stream_id)
            )
            return response, [event async for event in stream]

    response, events = asyncio.run(use_async_client())
    assert response.output_text == "spectr routes every"
    assert events[-1].type == "response.completed"
    assert tokens(record(redis_client, surface, plain_id))[2:] == (
        str(response.usage.input_tokens), "3", "usage"
    )  # fmt: skip
    assert tokens(record(redis_client, surface, stream_id))[3:] == ("2", "usage")


def test_responses_stream_usage_comes_from_response_completed(surface, redis_client):
    request_id = call_id()
    stream = surface.client().responses.create(
        model="llama", input="hello there", max_output_tokens=6, stream=True, **tagged(request_id)
    )
    events = list(stream)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    completed = events[-1]
    assert events[0].type == "response.created" and completed.type == "response.completed"
    assert "".join(deltas).split() == completed.response.output_text.split()
    assert len(deltas) == 6
    usage = completed.response.usage
    entry = record(redis_client, surface, request_id)
    assert tokens(entry) == ("/v1/responses", "200", str(usage.input_tokens), "6", "usage")
    assert entry["stream"] == "1"
    log = [json.loads(line) for line in surface.proxy.access_log.read_text().splitlines()]
    [line] = [line for line in log if line["request_id"] == request_id]
    assert (line["status"], line["model"], line["key"], line["path"]) == (
        200, "llama", "main", "/v1/responses"
    )  # fmt: skip
    assert 'kind="completion",model="llama"}' in surface.proxy.metrics()


def test_moderations_and_a_key_with_one_model_needs_no_model_name(surface, redis_client):
    named, unnamed = call_id(), call_id()
    moderation = surface.client().moderations.create(
        model="llama", input="is this fine", **tagged(named)
    )
    # `model` is optional here: the key may use only llama, so llama it is.
    default = surface.client("solo").moderations.create(input="and this", **tagged(unnamed))
    assert moderation.results[0].flagged is False and default.results[0].flagged is False
    assert tokens(record(redis_client, surface, named)) == (
        "/v1/moderations", "200", "0", "0", "none"
    )  # fmt: skip
    entry = record(redis_client, surface, unnamed)
    assert (entry["model"], entry["key_id"], entry["status"]) == ("llama", "solo", "200")
    assert "model" not in json.loads(upstream_request(surface.a, unnamed)[2])  # sent as it came


def test_images_generate(surface, redis_client):
    request_id = call_id()
    image = surface.client().images.generate(
        model="llama", prompt="a red fox", **tagged(request_id)
    )
    assert image.data and image.data[0].b64_json
    assert tokens(record(redis_client, surface, request_id)) == (
        "/v1/images/generations", "200", "3", "16", "usage"
    )  # fmt: skip


def test_audio_speech_answers_the_replicas_bytes(surface, redis_client):
    request_id = call_id()
    speech = surface.client().audio.speech.create(
        model="llama", voice="alloy", input="say hi", **tagged(request_id)
    )
    assert speech.content == b"".join(SPEECH_CHUNKS)
    assert speech.response.headers["content-type"] == "audio/mpeg"
    entry = record(redis_client, surface, request_id)
    assert tokens(entry) == ("/v1/audio/speech", "200", "0", "0", "none")
    assert entry["stream"] == "0"  # passed through as it came, but no event stream to count


def test_audio_transcription_and_translation_uploads(surface, redis_client):
    client, ids = surface.client(), [call_id(), call_id()]
    transcript = client.audio.transcriptions.create(
        model="l3", file=("clip.wav", AUDIO, "audio/wav"), **tagged(ids[0])
    )
    translation = client.audio.translations.create(
        model="whisper", file=("clip.wav", AUDIO, "audio/wav"), **tagged(ids[1])
    )
    assert transcript.text == translation.text == "spectr routes every"
    input_tokens = str(len(AUDIO) // 100 + 1)
    assert [tokens(record(redis_client, surface, i)) for i in ids] == [
        ("/v1/audio/transcriptions", "200", input_tokens, "3", "usage"),
        ("/v1/audio/translations", "200", input_tokens, "3", "usage"),
    ]
    # The alias in the form became the model's upstream name; the file arrived intact.
    assert surface.a.models_seen[-2:] == ["llama-3-8b", "whisper"]
    assert surface.a.uploads_seen[-2:] == [AUDIO, AUDIO]


def multipart(boundary: str, model: str, model_last: bool = False) -> bytes:
    """Build a transcription upload by hand, so the bytes sent are known exactly."""
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
    upload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + AUDIO
        + b"\r\n"
    )
    parts = [upload, field.encode()] if model_last else [field.encode(), upload]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("model_last", [False, True])
def test_multipart_upload_is_forwarded_unchanged_but_for_an_alias(surface, model_last):
    boundary = "spectr-" + uuid.uuid4().hex
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    sent = {name: multipart(boundary, name, model_last) for name in ("whisper", "l3")}
    ids = {name: call_id() for name in sent}
    with surface.http() as http:
        for name, body in sent.items():
            reply = http.post(
                "/v1/audio/transcriptions", content=body,
                headers={**headers, "x-request-id": ids[name]},
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
    _, _, whisper_body = upstream_request(surface.a, ids["whisper"])
    _, alias_headers, alias_body = upstream_request(surface.a, ids["l3"])
    assert whisper_body == sent["whisper"]  # the model's own name: not a byte changed
    assert alias_body == multipart(boundary, "llama-3-8b", model_last)  # only the name changed
    assert alias_headers["content-length"] == str(len(alias_body))


def test_rerank_cohere_and_jina_shape(surface, redis_client):
    request_id = call_id()
    body = {"model": "l3", "query": "which gateway", "documents": ["spectr", "other one"]}
    reply = surface.client().post(
        "/rerank", body=body, cast_to=httpx.Response,
        options={"headers": {"X-Request-Id": request_id}},
    )  # fmt: skip
    results = reply.json()["results"]
    assert [r["index"] for r in results] == [0, 1] and results[0]["relevance_score"] == 1.0
    # Rerank servers report only total_tokens: all of it is input.
    total = str(reply.json()["usage"]["total_tokens"])
    assert tokens(record(redis_client, surface, request_id)) == (
        "/v1/rerank", "200", total, "0", "usage"
    )  # fmt: skip
    assert json.loads(upstream_request(surface.a, request_id)[2])["model"] == "llama-3-8b"


def test_files_and_batches_go_to_the_model_in_the_header_and_stay_on_one_replica(
    surface, redis_client
):
    client = surface.client(default_headers={"X-Spectr-Model": "store"})
    lines = [{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "store", "messages": [{"role": "user", "content": "hi"}]}}]  # fmt: skip
    jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()
    ids = {step: call_id() for step in ("upload", "list", "get", "content", "batch", "read",
                                        "cancel", "delete")}  # fmt: skip
    uploaded = client.files.create(
        file=("batch.jsonl", jsonl, "application/jsonl"), purpose="batch", **tagged(ids["upload"])
    )
    assert [f.id for f in client.files.list(**tagged(ids["list"]))] == [uploaded.id]
    assert client.files.retrieve(uploaded.id, **tagged(ids["get"])).bytes == len(jsonl)
    assert client.files.content(uploaded.id, **tagged(ids["content"])).content == jsonl
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        **tagged(ids["batch"]),
    )  # fmt: skip
    assert client.batches.retrieve(batch.id, **tagged(ids["read"])).status == "validating"
    assert client.batches.cancel(batch.id, **tagged(ids["cancel"])).status == "cancelling"
    assert client.files.delete(uploaded.id, **tagged(ids["delete"])).deleted is True

    entries = {step: record(redis_client, surface, i) for step, i in ids.items()}
    assert {step: (e["endpoint"], e["status"]) for step, e in entries.items()} == {
        "upload": ("/v1/files", "200"), "list": ("/v1/files", "200"),
        "get": ("/v1/files/{id}", "200"), "content": ("/v1/files/{id}/content", "200"),
        "batch": ("/v1/batches", "200"), "read": ("/v1/batches/{id}", "200"),
        "cancel": ("/v1/batches/{id}/cancel", "200"), "delete": ("/v1/files/{id}", "200"),
    }  # fmt: skip
    # Pinned to the model's first replica, so the batch found the file the upload left there.
    assert {(e["model"], e["replica"], e["total_tokens"]) for e in entries.values()} == {
        ("store", "a", "0")
    }
    assert "x-spectr-model" not in upstream_request(surface.a, ids["upload"])[1]


def test_files_need_a_model_and_a_runtimes_own_404_passes_through(surface, redis_client):
    with pytest.raises(openai.BadRequestError) as unnamed:
        surface.client().files.list()  # this key may use several models: which one?
    assert "X-Spectr-Model" in unnamed.value.body["message"]  # type: ignore[index]
    request_id = call_id()
    client = surface.client(default_headers={"X-Spectr-Model": "llama"})
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve("file-nope", **tagged(request_id))
    # The runtime's own 404 (it serves files, it has no such one) reaches the client as it is.
    assert missing.value.body["message"] == "No such File object: file-nope"  # type: ignore[index]
    assert record(redis_client, surface, request_id)["status"] == "404"


def test_tpm_limit_applies_to_responses(surface, redis_client):
    client = surface.client("tpm")
    wait_for_next_minute_if_close()
    first_id = call_id()
    first = client.responses.create(
        model="llama", input="hello there", max_output_tokens=12, **tagged(first_id)
    )
    assert first.usage is not None and first.usage.total_tokens >= 10  # the limit
    record(redis_client, surface, first_id)  # written with the minute's token counter
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model="llama", input="again")
    assert "tokens per minute" in refused.value.body["message"]  # type: ignore[index]


def test_wrong_method_and_unknown_path(surface):
    with surface.http() as http:
        wrong = http.get("/v1/responses")
        delete = http.delete("/v1/audio/speech")
        unknown = http.post("/v1/nonsense", json={"model": "llama"})
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert wrong.json()["error"]["message"] == "/v1/responses takes POST, not GET."
    assert (delete.status_code, delete.json()["error"]["code"]) == (405, "method_not_allowed")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_endpoint")


def test_endpoint_the_runtime_does_not_serve_is_a_clear_error(surface, redis_client):
    request_id = call_id()
    client = surface.client(max_retries=2)  # the client's default: it must not retry this 501
    with pytest.raises(openai.APIStatusError) as unserved:
        client.audio.speech.create(
            model="bare-model", voice="alloy", input="hi", **tagged(request_id)
        )
    assert unserved.value.status_code == 501
    assert unserved.value.body["code"] == "endpoint_not_supported"  # type: ignore[index]
    message = unserved.value.body["message"]  # type: ignore[index]
    assert "'bare-model' runs on a server that does not serve POST /v1/audio/speech" in message
    upstream_request(surface.bare, request_id)  # asked once, not three times
    entry = record(redis_client, surface, request_id)
    assert (entry["status"], entry["replica"], entry["model"]) == ("501", "bare", "bare-model")
    # What the runtime does serve still works.
    chat = client.chat.completions.create(
        model="bare-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content
