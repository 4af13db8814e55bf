"""Every OpenAI-shaped endpoint of the gateway, driven by the official `openai` client against a
real spectr-proxy process, real Redis and stand-in model servers (tests/proxy/openai_surface.py):
each call's answer and its usage record in Redis (endpoint, status, tokens) are checked.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import openai
import pytest

from proxy.tests.llm_standin_surface import SPEECH_CHUNKS
from proxy.tests.openai_surface import call_id, record, tagged, tokens, upstream_request

pytestmark = [pytest.mark.slow, pytest.mark.redis]

AUDIO = b"RIFF" + bytes(range(256)) * 4  # stands in for a WAV clip: any bytes, some not UTF-8


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


def test_images_generate_and_edit(surface, redis_client):
    client, ids = surface.client(), [call_id(), call_id()]
    image = client.images.generate(model="llama", prompt="a red fox", **tagged(ids[0]))
    edited = client.images.edit(
        model="l3", image=("fox.png", b"\x89PNG fox", "image/png"), prompt="add a hat",
        **tagged(ids[1]),
    )  # fmt: skip
    assert image.data and image.data[0].b64_json and edited.data and edited.data[0].b64_json
    assert [tokens(record(redis_client, surface, i)) for i in ids] == [
        ("/v1/images/generations", "200", "3", "16", "usage"),
        ("/v1/images/edits", "200", "3", "16", "usage"),
    ]
    assert b'name="model"\r\n\r\nllama-3-8b\r\n' in upstream_request(surface.a, ids[1])[2]


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
