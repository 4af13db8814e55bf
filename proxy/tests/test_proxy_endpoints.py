"""The gateway's endpoint table, multipart model fields, usage shapes and the replies addon,
without sockets (mitmproxy's taddons and test flows)."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import taddons, tutils

from proxy.addons.replies import GatewayReplies, names_no_route
from proxy.config import parse_config
from proxy.endpoints import ENDPOINTS, find_endpoint, model_id
from proxy.multipart import find_field, replace_span
from proxy.state import GATEWAY, TARGET, GatewayRequest, ProxyState, Target, choose_replica
from proxy.tests.test_proxy_addons import error_code, flow, run_gateway, state
from proxy.usage import SseTokenTap, TokenCount, estimate_prompt_tokens, tokens_from_body

BOUNDARY = "b0undary"
FORM = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[str, bytes, str | None]) -> bytes:
    """Build a multipart/form-data body of (name, value, filename) parts."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/responses", "/v1/responses"),
        ("/v1/responses/resp_1/input_items", "/v1/responses/{id}/input_items"),
        ("/v1/files/file-1", "/v1/files/{id}"),
        ("/v1/files/file-1/content", "/v1/files/{id}/content"),
        ("/v1/batches/b-1/cancel", "/v1/batches/{id}/cancel"),
        ("/v1/models/org/name", "/v1/models/{id}"),
        ("/v1/files/", None),
        ("/v1/files/file-1/nothing", None),
        ("/v1/audio", None),
        ("/v1/chat/completions/", None),
    ],
)
def test_endpoint_lookup(path, template):
    endpoint = find_endpoint(path)
    assert (endpoint.template if endpoint else None) == template


def test_every_endpoint_is_found_by_its_template_and_fits_the_usage_column():
    for endpoint in ENDPOINTS:
        assert find_endpoint(endpoint.template.replace("{id}", "x-1")) is endpoint
        assert len(endpoint.template) <= 64  # the portal's usage_records.endpoint column
    assert model_id("/v1/models/meta%2Fllama-3") == "meta/llama-3"


def gateway_flow(path: str, method: str = "POST", body: object = None, **headers: str):
    f = flow(path, method=method, body=body)
    for name, value in headers.items():
        f.request.headers[name.replace("_", "-")] = value
    return f


@pytest.mark.anyio
async def test_model_retrieve_and_method_check():
    s = state()
    found, alias, hidden = (
        gateway_flow(f"/v1/models/{name}", "GET") for name in ("llama", "l3", "other")
    )
    wrong = gateway_flow("/v1/embeddings", "GET")
    for f in (found, alias, hidden, wrong):
        run_gateway(s, f)
    assert json.loads(found.response.content)["id"] == "llama"
    assert json.loads(alias.response.content)["id"] == "l3"
    assert error_code(hidden) == (404, "model_not_found")  # exists, but not for this key
    assert error_code(wrong) == (405, "method_not_allowed")
    assert wrong.response.headers["allow"] == "POST"


@pytest.mark.anyio
async def test_model_comes_from_the_header_or_the_keys_only_model():
    s = state()
    named = gateway_flow("/v1/files", "GET", x_spectr_model="l3")
    defaulted = gateway_flow("/v1/batches/b-1", "GET")  # key k1 may use llama alone
    for f in (named, defaulted):
        run_gateway(s, f)
    for f in (named, defaulted):
        assert f.response is None and f.metadata[GATEWAY].model.name == "llama"
    assert "x-spectr-model" not in named.request.headers
    assert named.metadata[GATEWAY].endpoint == "/v1/files"
    assert defaulted.metadata[GATEWAY].endpoint == "/v1/batches/{id}"


@pytest.mark.anyio
async def test_form_model_alias_is_rewritten_in_place_and_nothing_else():
    s = state()
    audio = bytes(range(256)) * 8
    sent = form(("file", audio, "a.wav"), ("model", b"l3", None), ("language", b"en", None))
    f = flow("/v1/audio/transcriptions")
    f.request.headers["content-type"] = FORM
    f.request.content = sent
    run_gateway(s, f)
    assert f.response is None
    assert f.request.content == sent.replace(b"\r\n\r\nl3\r\n", b"\r\n\r\nllama-3\r\n")
    assert f.request.headers["content-length"] == str(len(f.request.content))


@pytest.mark.anyio
async def test_form_model_refusals():
    s = state()
    unknown, allowed_elsewhere = flow("/v1/audio/translations"), flow("/v1/images/edits")
    for f, model in ((unknown, b"gpt-9"), (allowed_elsewhere, b"other")):
        f.request.headers["content-type"] = FORM
        f.request.content = form(("model", model, None), ("image", b"\x89PNG", "a.png"))
        run_gateway(s, f)
    assert error_code(unknown) == (404, "model_not_found")
    assert error_code(allowed_elsewhere) == (403, "model_not_allowed")


def test_find_field_walks_parts_and_skips_files():
    body = form(("model", b"file-named-model", "model.txt"), ("model", b"m1", None))
    span = find_field(FORM, body, b"model")
    assert span is not None and body[span[0] : span[1]] == b"m1"
    assert replace_span(body, span, b"other").count(b"other") == 1
    assert find_field(FORM, form(("file", b"x", "a.wav")), b"model") is None
    assert find_field("multipart/form-data", body, b"model") is None  # no boundary
    quoted = f'multipart/form-data; boundary="{BOUNDARY}"'
    assert find_field(quoted, b"preamble\r\n" + body, b"model") == (
        span[0] + len(b"preamble\r\n"),
        span[1] + len(b"preamble\r\n"),
    )
    assert find_field(FORM, body[: span[0]], b"model") is None  # cut short


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}, (5, 4, "usage")),
        ({"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}, (7, 3, "usage")),
        ({"prompt_tokens": 6, "total_tokens": 6}, (6, 0, "usage")),  # embeddings
        ({"total_tokens": 11}, (11, 0, "usage")),  # rerank: all input
        ({"type": "duration", "seconds": 3}, (0, 0, "none")),
        (None, (0, 0, "none")),
    ],
)
def test_usage_shapes(usage, expected):
    count = tokens_from_body(json.dumps({"usage": usage}).encode())
    assert (count.prompt, count.completion, count.source) == expected


def test_binary_bodies_are_not_read_for_usage():
    assert tokens_from_body(b"ID3\x04\xff\xfb" * 100) == TokenCount()
    assert tokens_from_body(b'\n  {"usage": {"total_tokens": 2}}').prompt == 2


def responses_stream(framing: str = "\n") -> bytes:
    events = [
        ("response.created", {"response": {"status": "in_progress", "usage": None}}),
        *[("response.output_text.delta", {"delta": w}) for w in ("a ", "b ", "c ")],
        ("response.completed", {"response": {"usage": {"input_tokens": 4, "output_tokens": 3}}}),
    ]
    out = ""
    for kind, payload in events:
        data = json.dumps({"type": kind, **payload})
        out += f"event: {kind}{framing}data: {data}{framing}{framing}"
    return out.encode()


@pytest.mark.parametrize("framing", ["\n", "\r\n"])
def test_responses_stream_usage_comes_from_response_completed(framing):
    done: list[bool] = []
    tap = SseTokenTap(on_done=lambda: done.append(True))
    stream = responses_stream(framing)
    passed = b"".join(tap(stream[i : i + 7]) for i in range(0, len(stream), 7))
    assert passed == stream  # untouched
    assert tap.count == TokenCount(4, 3, "usage") and done == [True]


def test_responses_stream_without_usage_is_estimated_from_deltas():
    tap = SseTokenTap()
    tap(responses_stream().split(b"event: response.completed")[0])
    assert tap.count == TokenCount(0, 3, "estimated")
    assert estimate_prompt_tokens({"input": [{"role": "user", "content": "x" * 8}]}) == 2
    assert estimate_prompt_tokens({"input": "x" * 8, "instructions": "y" * 4}) == 3


def upstream_answer(path: str, status: int, body: bytes, content_type: str = "text/html"):
    s = state()
    f = flow(path, method="GET" if path.startswith("/v1/files") else "POST", body={"model": "l3"})
    f.request.headers["x-spectr-model"] = "llama"
    run_gateway(s, f)
    replica = s.config.pools["web"].replicas[0]
    f.metadata[TARGET] = Target("web", "llama", 60, 1, replica)
    f.response = tutils.tresp(
        status_code=status, content=body, headers=[(b"content-type", content_type.encode())]
    )
    return f


@pytest.mark.anyio
async def test_runtime_without_the_endpoint_gets_a_clear_501():
    replies = GatewayReplies()
    with taddons.context(replies):
        bare = upstream_answer("/v1/audio/speech", 404, b"<h1>Not Found</h1>")
        api = upstream_answer(
            "/v1/files/file-9", 404, b'{"error": {"message": "No such File"}}', "application/json"
        )
        for f in (bare, api):
            replies.response(f)
    assert error_code(bare) == (501, "endpoint_not_supported")
    assert bare.response.headers["x-should-retry"] == "false"
    assert "does not serve POST /v1/audio/speech" in bare.response.text
    assert api.response.status_code == 404 and b"No such File" in api.response.content


def test_which_404_bodies_mean_no_such_route():
    assert names_no_route(b"404 page not found")  # Ollama
    assert names_no_route(b"")  # TGI
    assert names_no_route(b'{"detail": "Not Found"}')  # FastAPI: vLLM, SGLang
    assert names_no_route(b'{"error": {"code": 404, "message": "File Not Found"}}')  # llama.cpp
    assert not names_no_route(b'{"error": "model \\"x\\" not found"}')
    assert not names_no_route(b'{"object": "error", "message": "The model `x` does not exist."}')


@pytest.mark.anyio
async def test_binary_answers_stream_and_errors_do_not():
    replies = GatewayReplies()
    with taddons.context(replies):
        speech = upstream_answer("/v1/audio/speech", 200, b"ID3", "audio/mpeg")
        failed = upstream_answer("/v1/audio/speech", 500, b"{}", "application/json")
        chat = upstream_answer("/v1/chat/completions", 200, b"{}", "application/json")
        for f in (speech, failed, chat):
            replies.responseheaders(f)
    assert speech.response.stream is True
    assert not failed.response.stream and not chat.response.stream


def test_pinned_endpoints_keep_to_the_first_available_replica():
    s = ProxyState(
        parse_config(
            {
                "version": 1,
                "models": [{"name": "m", "strategy": "round_robin", "replicas": [
                    {"url": "http://10.0.0.1:80", "id": "one"},
                    {"url": "http://10.0.0.2:80", "id": "two"}]}],
                "keys": [{"id": "k", "sha256": "0" * 64}],
            }
        )
    )  # fmt: skip
    pool = s.config.pools["model:m"]
    gateway = GatewayRequest("/v1/files", spec=find_endpoint("/v1/files"))
    assert {choose_replica(s.balancer, pool, gateway).id for _ in range(4)} == {"one"}
    assert {choose_replica(s.balancer, pool, None).id for _ in range(4)} == {"one", "two"}
    s.balancer.mark_down(pool.replicas[0], 60)
    assert choose_replica(s.balancer, pool, gateway).id == "two"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
