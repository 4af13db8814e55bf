"""Files and batches (model from X-Spectr-Model, one replica), and what the gateway refuses on
the OpenAI surface: no model named, TPM spent, a wrong method, an endpoint the runtime lacks.
Driven by the official `openai` client, as in test_proxy_openai_surface.py.
"""

from __future__ import annotations

import json

import openai
import pytest

from proxy.tests.openai_surface import call_id, record, tagged, upstream_request
from proxy.tests.test_proxy_gateway import wait_for_next_minute_if_close

pytestmark = [pytest.mark.slow, pytest.mark.redis]


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
