"""Catalog API: seeding, CRUD with clear 422s, estimates and placement over stand-in GPUs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.portal.conftest import ApiClient

H100, A10, L4 = "NVIDIA H100 80GB HBM3", "NVIDIA A10", "NVIDIA L4"


def _model_id(api: ApiClient, name: str) -> int:
    return next(m["id"] for m in api.get("/api/v1/models").json if m["name"] == name)


def _runtime_id(api: ApiClient, name: str) -> int:
    return next(r["id"] for r in api.get("/api/v1/runtimes").json if r["name"] == name)


def test_seed_adds_real_runtimes_and_models_once(api_as: Callable[[str], ApiClient]) -> None:
    admin = api_as("admin")
    first = admin.post("/api/v1/catalog/seed")
    assert first.status_code == 200
    assert first.json["runtimes"] == 5 and first.json["models"] >= 5
    assert admin.post("/api/v1/catalog/seed").json == {"runtimes": 0, "models": 0, "images": 0}
    runtimes = {r["name"]: r for r in admin.get("/api/v1/runtimes").json}
    assert set(runtimes) == {"vllm", "tgi", "ollama", "llama.cpp", "custom"}
    assert runtimes["vllm"]["multi_gpu"] is True and runtimes["vllm"]["openai_base_path"] == "/v1"


def test_invalid_image_reference_is_a_422_that_says_why(api_as: Callable[[str], ApiClient]) -> None:
    api = api_as("operator")
    answer = api.post("/api/v1/catalog/images", json={"reference": "Team/App:latest"})
    assert answer.status_code == 422
    assert "lowercase" in answer.json["message"] and answer.json["details"]["reference"]
    good = api.post(
        "/api/v1/catalog/images",
        json={"reference": "localhost:5000/team/app:1", "labels": {"a": "b"}},
    )
    assert good.status_code == 201
    assert (good.json["registry"], good.json["repository"], good.json["tag"]) == (
        "localhost:5000",
        "team/app",
        "1",
    )
    assert (
        api.post(
            "/api/v1/catalog/images", json={"reference": "localhost:5000/team/app:1"}
        ).status_code
        == 409
    )


def test_model_crud_and_field_errors(api_as: Callable[[str], ApiClient]) -> None:
    api = api_as("operator")
    body = {
        "name": "tiny",
        "family": "test",
        "parameters_billions": 0.5,
        "quantization": "bf16",
        "format": "safetensors",
        "source_kind": "huggingface",
        "source": "org/tiny",
        "context_length": 2048,
        "license": "mit",
    }
    created = api.post("/api/v1/models", json=body)
    assert created.status_code == 201
    patched = api.patch(f"/api/v1/models/{created.json['id']}", json={"context_length": 4096})
    assert patched.json["context_length"] == 4096 and patched.json["family"] == "test"
    wrong = api.post(
        "/api/v1/models", json={**body, "name": "x", "quantization": "q3", "source": "no-slash"}
    )
    assert wrong.status_code == 422 and "quantization" in wrong.json["details"]
    bad_source = api.post("/api/v1/models", json={**body, "name": "y", "source": "no-slash"})
    assert bad_source.status_code == 422 and "owner/repository" in bad_source.json["message"]
    assert api_as("viewer").delete(f"/api/v1/models/{created.json['id']}").status_code == 403
    assert api.delete(f"/api/v1/models/{created.json['id']}").status_code == 204


def test_runtime_template_with_unknown_placeholder_is_refused(
    api_as: Callable[[str], ApiClient],
) -> None:
    api = api_as("operator")
    body = {
        "name": "mine",
        "kind": "custom",
        "image": "srv:1",
        "port": 8000,
        "command_template": ["--model", "{modle}"],
    }
    answer = api.post("/api/v1/runtimes", json=body)
    assert answer.status_code == 422 and "{modle}" in answer.json["message"]


def test_estimate_endpoint_uses_runtime_overhead_and_context(
    api_as: Callable[[str], ApiClient], seeded: Any
) -> None:
    api = api_as("viewer")
    model = _model_id(api, "llama-3.1-8b-instruct")
    vllm = _runtime_id(api, "vllm")
    answer = api.get(f"/api/v1/models/{model}/estimate?runtime_id={vllm}&context_length=8192").json
    assert answer["kv_cache_mib"] == 1024 and answer["overhead_mib"] == 2048
    assert (
        answer["total_mib"] == answer["weights_mib"] + 1024 + 2048
        or abs(answer["total_mib"] - (answer["weights_mib"] + 3072)) <= 1
    )


def test_placement_ranks_hosts_with_stand_in_gpus(
    api_as: Callable[[str], ApiClient], seeded: Any, make_host: Callable[..., Any]
) -> None:
    # Stand-in GPU facts: no GPU exists on this machine; the rows are what nvidia-smi would report.
    make_host("big", [(H100, 81559, 1000)])
    make_host("roomy", [(H100, 81559, 40000)])
    make_host("pair", [(A10, 23028, 0), (A10, 23028, 0)])
    make_host("small", [(L4, 23034, 0)])
    make_host("cpu-only", [])
    make_host("down", [(H100, 81559, 0)], status="unreachable")
    api = api_as("viewer")
    model = _model_id(api, "llama-3.1-8b-instruct")  # bf16: ~15.3 GiB weights
    vllm = _runtime_id(api, "vllm")
    answer = api.get(
        f"/api/v1/models/{model}/placement?runtime_id={vllm}&context_length=65536"
    ).json
    need = answer["estimate"]["total_mib"]  # weights + 8 GiB KV + 2 GiB overhead: ~25 GiB
    assert 25000 < need < 26500
    names = [c["name"] for c in answer["candidates"]]
    # One-GPU hosts first, most headroom first; the A10 pair only fits by sharding over both.
    assert names == ["big", "roomy", "pair"]
    assert answer["candidates"][2]["gpu_indexes"] == [0, 1]
    refused = {r["name"]: r["reason"] for r in answer["refused"]}
    assert refused["down"] == "host is unreachable, not ready"
    assert refused["cpu-only"] == "host reports no GPUs"
    assert "needs" in refused["small"] and "GPU 0" in refused["small"]


def test_placement_refuses_every_host_for_an_oversize_model(
    api_as: Callable[[str], ApiClient], seeded: Any, make_host: Callable[..., Any]
) -> None:
    make_host("big", [(H100, 81559, 0)])  # stand-in GPU facts
    api = api_as("viewer")
    model = _model_id(api, "llama-3.1-70b-instruct")  # ~131 GiB of bf16 weights
    llamacpp = _runtime_id(api, "llama.cpp")  # one GPU only
    answer = api.get(
        f"/api/v1/models/{model}/placement?runtime_id={llamacpp}&context_length=4096"
    ).json
    assert answer["candidates"] == []
    assert "does not spread" not in answer["refused"][0]["reason"]  # one GPU: nothing to spread
    assert "needs" in answer["refused"][0]["reason"]


def test_placement_counts_memory_reserved_by_spectr_deployments(
    api_as: Callable[[str], ApiClient], seeded: Any, make_host: Callable[..., Any]
) -> None:
    from portal.apps.models import Application, AppRevision
    from portal.extensions import db

    host = make_host("shared", [(H100, 81559, 0)])  # stand-in GPU facts: reports nothing used yet
    app = Application(
        name="already-there",
        host_id=host.id,
        kind="container",
        status="running",
        latest_revision=1,
        deployed_revision=1,
    )
    app.revisions.append(
        AppRevision(number=1, spec={"image": "x:1"}, gpu_indexes=[0], vram_reservation_mib=70000)
    )
    db.session.add(app)
    db.session.commit()
    api = api_as("viewer")
    model = _model_id(api, "llama-3.1-8b-instruct")
    answer = api.get(f"/api/v1/models/{model}/placement?context_length=32768").json
    assert answer["candidates"] == []
    assert "11559 MiB" in answer["refused"][0]["reason"]
