"""Rules that refuse a deployment before anything changes: host not ready, GPUs not free,
a model too big for the chosen GPUs, bad input. Hosts here are rows with stand-in GPU facts
(this machine has no GPU); nothing reaches an engine, so these tests are fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal.apps.models import Application, AppRevision
from portal.extensions import db
from tests.portal.conftest import ApiClient

H100, A10 = "NVIDIA H100 80GB HBM3", "NVIDIA A10"


def _app(host_id: int, **container: Any) -> dict[str, Any]:
    return {
        "name": "svc",
        "host_id": host_id,
        "container": {"image": "registry.local/svc:1", **container},
    }


def _running_app_on(host: Any, gpus: list[int]) -> None:
    app = Application(
        name="holder",
        host_id=host.id,
        kind="container",
        status="running",
        latest_revision=1,
        deployed_revision=1,
    )
    app.revisions.append(
        AppRevision(number=1, spec={"image": "x:1"}, gpu_indexes=gpus, vram_reservation_mib=20000)
    )
    db.session.add(app)
    db.session.commit()


def test_host_not_ready_is_a_409_and_nothing_is_recorded(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any]
) -> None:
    host = make_host("booting", status="bootstrapping", status_reason="bootstrap running")
    api = api_as("operator")
    answer = api.post("/api/v1/apps", json=_app(host.id))
    assert answer.status_code == 409
    assert (
        answer.json["message"] == "Host 'booting' is bootstrapping, not ready: bootstrap running."
    )
    assert api.get("/api/v1/apps").json == []


def test_more_gpus_than_free_is_a_409(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any]
) -> None:
    host = make_host("pair", [(A10, 23028, 0), (A10, 23028, 0)])  # stand-in GPU facts
    _running_app_on(host, [0])
    api = api_as("operator")
    two = api.post("/api/v1/apps", json=_app(host.id, gpus=[0, 1]))
    assert (
        two.status_code == 409 and "2 GPUs asked but 'pair' has 1 free (1)" in two.json["message"]
    )
    taken = api.post("/api/v1/apps", json=_app(host.id, gpus=[0]))
    assert taken.status_code == 409 and "used by application 'holder'" in taken.json["message"]
    missing = api.post("/api/v1/apps", json=_app(host.id, gpus=[5]))
    assert missing.status_code == 409 and "no GPU 5" in missing.json["message"]
    ok = api.post("/api/v1/apps", json={**_app(host.id, gpus=[1]), "deploy": False})
    assert ok.status_code == 201 and ok.json["revisions"][0]["gpu_indexes"] == [1]


def test_invalid_specs_are_422_with_the_field(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any]
) -> None:
    host = make_host("h")
    api = api_as("operator")
    cases = [
        ({"name": "Bad Name", "host_id": host.id, "container": {"image": "a:1"}}, "name"),
        (_app(host.id, ports=[{"container_port": 99999}]), "container"),
        (_app(host.id, memory="lots"), "container"),
        (_app(host.id, env={"1BAD": "x"}), "container"),
        ({"name": "c", "host_id": host.id, "kind": "compose"}, "compose"),
    ]
    for body, field in cases:
        answer = api.post("/api/v1/apps", json=body)
        assert answer.status_code == 422, body
        assert field in answer.json["details"], answer.json
    assert api.post("/api/v1/apps", json=_app(9999)).status_code == 404


def test_deploy_model_refuses_gpus_too_small_for_it(
    api_as: Callable[[str], ApiClient], seeded: Any, make_host: Callable[..., Any]
) -> None:
    host = make_host("a10", [(A10, 23028, 0)])  # stand-in GPU facts
    api = api_as("operator")
    models = {m["name"]: m["id"] for m in api.get("/api/v1/models").json}
    runtimes = {r["name"]: r["id"] for r in api.get("/api/v1/runtimes").json}
    body = {
        "name": "llama70",
        "runtime_id": runtimes["vllm"],
        "host_id": host.id,
        "gpus": [0],
        "context_length": 8192,
    }
    answer = api.post(f"/api/v1/models/{models['llama-3.1-70b-instruct']}/deploy", json=body)
    assert answer.status_code == 409
    assert "GPU 0 of 'a10' has 23028 MiB free" in answer.json["message"]
    no_gpu = api.post(
        f"/api/v1/models/{models['llama-3.1-8b-instruct']}/deploy", json={**body, "gpus": []}
    )
    assert no_gpu.status_code == 422 and "needs at least one GPU" in no_gpu.json["message"]
    gguf_on_vllm = api.post(
        f"/api/v1/models/{models['llama-3.1-8b-instruct-q4_k_m']}/deploy", json=body
    )
    assert gguf_on_vllm.status_code == 422 and "not gguf" in gguf_on_vllm.json["message"]
    assert api.get("/api/v1/apps").json == []


def test_deploy_model_records_the_runtime_command_and_reservation(
    api_as: Callable[[str], ApiClient], seeded: Any, make_host: Callable[..., Any]
) -> None:
    host = make_host("h100", [(H100, 81559, 0), (H100, 81559, 0)])  # stand-in GPU facts
    api = api_as("operator")
    models = {m["name"]: m["id"] for m in api.get("/api/v1/models").json}
    vllm = next(r["id"] for r in api.get("/api/v1/runtimes").json if r["name"] == "vllm")
    body = {"name": "llama8", "runtime_id": vllm, "host_id": host.id, "gpus": [0, 1], "context_length": 8192,
            "host_port": 18000, "deploy": False}  # fmt: skip
    answer = api.post(f"/api/v1/models/{models['llama-3.1-8b-instruct']}/deploy", json=body)
    assert answer.status_code == 201, answer.json
    revision = answer.json["revisions"][0]
    assert revision["spec"]["command"] == [
        "--model", "meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "llama-3.1-8b-instruct",
        "--max-model-len", "8192", "--tensor-parallel-size", "2", "--port", "8000",
    ]  # fmt: skip
    assert revision["spec"]["image"] == "vllm/vllm-openai:v0.8.5"
    assert revision["gpu_indexes"] == [0, 1]
    # (8.03e9 x 2 bytes of weights + 1024 MiB KV) / 2 + 2048 MiB overhead, on each GPU, rounded up
    mib = 1024 * 1024
    assert revision["vram_reservation_mib"] == -(
        -int((8.03e9 * 2 + 1024 * mib) / 2 + 2048 * mib) // mib
    )
    assert revision["spec"]["ports"][0] == {
        "container_port": 8000,
        "host_port": 18000,
        "host_ip": host.address,  # published where the gateway on the Spectr node reaches it
        "protocol": "tcp",
    }


def test_secrets_are_encrypted_at_rest_and_never_returned(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any]
) -> None:
    from sqlalchemy import text

    host = make_host("h")
    api = api_as("operator")
    body = {**_app(host.id), "secret_env": {"DB_PASSWORD": "hunter2-very-secret"}, "deploy": False}
    created = api.post("/api/v1/apps", json=body)
    assert created.status_code == 201
    assert "hunter2" not in created.get_data(as_text=True)
    stored = db.session.execute(text("SELECT secret_env FROM app_revisions")).scalar_one()
    assert "hunter2" not in stored and stored.startswith("gAAAA")  # a Fernet token
    again = api.post(
        f"/api/v1/apps/{created.json['id']}/revisions",
        json={**body, "secret_env": {}, "remove_secrets": []},
    )
    assert again.json["revisions"][1]["secret_env_keys"] == ["DB_PASSWORD"]  # kept
    diff = api.get(f"/api/v1/apps/{created.json['id']}/diff?from=1&to=2").json
    assert diff["changed_keys"] == [] and "hunter2" not in diff["diff"]
    dropped = api.post(
        f"/api/v1/apps/{created.json['id']}/revisions",
        json={**body, "secret_env": {}, "remove_secrets": ["DB_PASSWORD"]},
    )
    assert dropped.json["revisions"][2]["secret_env_keys"] == []
    assert api.get(f"/api/v1/apps/{created.json['id']}/diff?from=2&to=3").json["changed_keys"] == [
        "secret_env"
    ]


def test_status_comes_from_the_host_health_checks(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any]
) -> None:
    from portal.hosts.models import HostContainer

    host = make_host("agent-host")
    api = api_as("operator")
    created = api.post("/api/v1/apps", json={**_app(host.id), "name": "svc", "deploy": False})
    assert created.json["status"] == "pending"
    # What the hosts context's health sweep records from the agent's container list.
    db.session.add(HostContainer(host_id=host.id, container_id="c1", name="svc", image="registry.local/svc:1",
                                 state="exited", exit_code=137, labels={}))  # fmt: skip
    db.session.commit()
    listed = api.get(f"/api/v1/apps?host_id={host.id}").json
    assert (
        listed[0]["status"] == "exited (137)" and listed[0]["status_detail"] == "svc: exited (137)"
    )
    row = db.session.query(HostContainer).one()
    row.state, row.health, row.exit_code = "running", "unhealthy", None
    db.session.commit()
    assert api.get("/api/v1/apps").json[0]["status"] == "unhealthy"


def test_cli_lists_applications_and_reports_refusals(
    app: Any, make_host: Callable[..., Any]
) -> None:
    from portal.apps import service

    host = make_host("cli-host", status="degraded", status_reason="engine down")
    service.create_app({**_app(host.id), "name": "cli-app", "kind": "container", "deploy": False})
    from portal.cli import cli

    runner = app.test_cli_runner()
    assert "5 runtimes" in runner.invoke(cli, ["catalog", "seed"]).output
    listed = runner.invoke(cli, ["apps", "list"])
    assert "cli-app" in listed.output and "pending" in listed.output
    refused = runner.invoke(cli, ["apps", "start", "cli-app"])
    assert refused.exit_code == 1 and "is degraded, not ready: engine down" in refused.output
    missing = runner.invoke(cli, ["apps", "rollback", "nope", "1"])
    assert missing.exit_code == 1 and "No application 'nope'" in missing.output


def test_revisions_round_trip_on_every_database(any_db_app: Any) -> None:
    from portal.apps import service
    from portal.apps.models import Application
    from portal.hosts.models import Host

    host = Host(name="db-host", address="192.0.2.9", status="ready")
    db.session.add(host)
    db.session.commit()
    body = {"name": "db-app", "host_id": host.id, "kind": "container", "deploy": False,
            "container": {"image": "registry.local/svc:1", "env": {"A": "1"}, "gpus": []},
            "secret_env": {"TOKEN": "t0ken"}}  # fmt: skip
    app = service.create_app(body)
    service.add_revision(
        app, {**body, "container": {**body["container"], "env": {"A": "2"}}, "secret_env": {}}
    )
    db.session.expire_all()
    stored = db.session.get(Application, app.id)
    assert [r.number for r in stored.revisions] == [1, 2]
    assert stored.revisions[1].spec["env"] == {"A": "2"}
    assert stored.revisions[1].spec["secret_env_keys"] == ["TOKEN"]
    assert service.diff_revisions(stored, 1, 2)["changed_keys"] == ["env"]


def test_a_revision_keeps_the_application_kind(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any]
) -> None:
    host = make_host("h")
    api = api_as("operator")
    compose = "services:\n  web:\n    image: registry.local/web:1\n"
    created = api.post("/api/v1/apps", json={"name": "proj", "host_id": host.id, "kind": "compose",
                                             "compose": compose, "deploy": False})  # fmt: skip
    assert created.status_code == 201, created.json
    revised = api.post(f"/api/v1/apps/{created.json['id']}/revisions",
                       json={"compose": compose.replace(":1", ":2"), "deploy": False})  # fmt: skip
    assert revised.status_code == 201, revised.json
    assert revised.json["kind"] == "compose"
    assert (
        revised.json["revisions"][1]["spec"]["compose"]["services"]["web"]["image"]
        == "registry.local/web:2"
    )
    wrong = api.post(
        f"/api/v1/apps/{created.json['id']}/revisions", json={"container": {"image": "a:1"}}
    )
    assert (
        wrong.status_code == 422
        and wrong.json["message"] == "A compose application needs 'compose'."
    )
    default_kind = api.post(
        "/api/v1/apps",
        json={"name": "one", "host_id": host.id, "container": {"image": "a:1"}, "deploy": False},
    )
    assert default_kind.json["kind"] == "container"


def test_engine_actions_retry_an_unreachable_agent_then_fail_readably(
    api_as: Callable[[str], ApiClient], make_host: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    # An agent address where nothing listens: every engine call is refused (transient).
    host = make_host("gone", agent_url=f"https://127.0.0.1:{free_port()}", agent_token="t" * 32)
    api = api_as("operator")
    created = api.post("/api/v1/apps", json={**_app(host.id), "deploy": False})
    operation = api.post(f"/api/v1/apps/{created.json['id']}/stop")
    assert operation.status_code == 202
    final = api.get(f"/api/v1/operations/{operation.json['id']}").json
    assert final["state"] == "failed"
    assert final["attempts"] == final["max_attempts"] > 1, final[
        "error"
    ]  # retried, not failed at once
    assert final["error"]
