"""The whole life of a model server deployed from the catalog onto the Spectr node itself,
checked on the real Docker engine at every step: deploy, answer /v1/models, stop, start, a new
revision, the same revision again (no change), rollback, remove.

The server is the stand-in image from tests/images/build-model-server.sh: a real LLM cannot
run here (no GPU, no weights), so a tiny OpenAI-compatible server takes its place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest

from tests.apps.helpers import get_json, refuses, succeeded
from tests.portal.conftest import ApiClient

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _catalog_entries(api: ApiClient, image: str) -> tuple[int, int]:
    runtime = api.post("/api/v1/runtimes", json={
        "name": "standin-runtime", "kind": "custom", "image": image, "port": 8000,
        "command_template": ["python3", "/srv/server.py", "--port", "{port}", "--model", "{model_name}"],
        "requires_gpu": False, "overhead_mib": 0, "health_path": "/health",
    })  # fmt: skip
    assert runtime.status_code == 201, runtime.json
    model = api.post("/api/v1/models", json={
        "name": "standin-tiny", "family": "standin", "parameters_billions": 0.01,
        "quantization": "fp16", "format": "other", "source_kind": "image", "source": image,
        "context_length": 2048, "license": "mit",
    })  # fmt: skip
    assert model.status_code == 201, model.json
    return model.json["id"], runtime.json["id"]


def _container(client: docker.DockerClient, name: str) -> Any:
    container = client.containers.get(name)
    container.reload()
    return container


def test_model_server_lifecycle_on_the_spectr_node(
    api_as: Callable[[str], ApiClient],
    local_host: Any,
    standin_image: str,
    docker_client: docker.DockerClient,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    api = api_as("operator")
    model_id, runtime_id = _catalog_entries(api, standin_image)
    name, port = unique_name("llm"), free_port()
    cleanup_containers.append(name)
    models_url = f"http://127.0.0.1:{port}/v1/models"

    # Deploy from the catalog: model + runtime + host (no GPU: the runtime does not need one).
    created = api.post(f"/api/v1/models/{model_id}/deploy", json={
        "name": name, "runtime_id": runtime_id, "host_id": local_host.id, "host_port": port,
        "pull": "never", "secret_env": {"API_TOKEN": "s3cret-value"},
    })  # fmt: skip
    assert created.status_code == 201, created.json
    app_id = created.json["id"]
    first_deploy = created.json["last_operation_id"]
    assert succeeded(api, first_deploy)["result"]["changed"] is True
    deploy_log = api.get(f"/api/v1/operations/{first_deploy}/log?limit=1000").get_data(as_text=True)
    assert "Run the application's container" in deploy_log and "s3cret-value" not in deploy_log
    assert get_json(models_url)["data"][0]["id"] == "standin-tiny"
    gateway_models = api.get("/api/v1/proxy/config").json["models"]
    assert {"name": "standin-tiny", "replicas": [{"url": f"http://127.0.0.1:{port}"}]}.items() <= {
        k: v
        for model in gateway_models
        if model["name"] == "standin-tiny"
        for k, v in model.items()
    }.items()
    container = _container(docker_client, name)
    assert container.status == "running"
    assert (
        container.labels["spectr.revision"] == "1"
        and container.labels["spectr.model"] == "standin-tiny"
    )
    assert "API_TOKEN=s3cret-value" in container.attrs["Config"]["Env"]
    shown = api.get(f"/api/v1/apps/{app_id}?refresh=1")
    assert shown.json["status"] == "running" and "s3cret-value" not in shown.get_data(as_text=True)
    assert shown.json["revisions"][0]["secret_env_keys"] == ["API_TOKEN"]

    # Stop and start through the engine.
    succeeded(api, api.post(f"/api/v1/apps/{app_id}/stop").json["id"])
    assert _container(docker_client, name).status == "exited"
    assert refuses(models_url)
    assert api.get(f"/api/v1/apps/{app_id}").json["status"].startswith("exited")
    succeeded(api, api.post(f"/api/v1/apps/{app_id}/start").json["id"])
    assert _container(docker_client, name).status == "running"
    assert get_json(models_url)["data"][0]["id"] == "standin-tiny"
    first_id = _container(docker_client, name).id

    # A new revision: another served name and an env variable; the secret is kept.
    spec = shown.json["revisions"][0]["spec"]
    spec["command"] = ["python3", "/srv/server.py", "--port", "8000", "--model", "standin-renamed"]
    spec["env"] = {"LOG_LEVEL": "debug"}
    revised = api.post(
        f"/api/v1/apps/{app_id}/revisions", json={"container": spec, "note": "rename"}
    )
    assert revised.status_code == 201, revised.json
    assert succeeded(api, revised.json["last_operation_id"])["result"]["revision"] == 2
    container = _container(docker_client, name)
    assert container.id != first_id and container.labels["spectr.revision"] == "2"
    assert {"LOG_LEVEL=debug", "API_TOKEN=s3cret-value"} <= set(container.attrs["Config"]["Env"])
    assert get_json(models_url)["data"][0]["id"] == "standin-renamed"
    diff = api.get(f"/api/v1/apps/{app_id}/diff?from=1&to=2").json
    assert {"command", "env"} <= set(diff["changed_keys"]) and "secret_env" not in diff[
        "changed_keys"
    ]
    assert "+  LOG_LEVEL: debug" in diff["diff"] and "s3cret" not in diff["diff"]

    # The same revision again changes nothing (the role is declarative).
    again = api.post(f"/api/v1/apps/{app_id}/deploy", json={"revision": 2})
    assert again.status_code == 202
    assert succeeded(api, again.json["id"])["result"]["changed"] is False
    assert _container(docker_client, name).id == container.id

    # Roll back to revision 1: a new revision 3 equal to 1, deployed.
    rolled = api.post(f"/api/v1/apps/{app_id}/rollback", json={"revision": 1})
    assert succeeded(api, rolled.json["id"])["result"]["revision"] == 3
    container = _container(docker_client, name)
    assert (
        container.labels["spectr.revision"] == "3"
        and "LOG_LEVEL=debug" not in container.attrs["Config"]["Env"]
    )
    assert get_json(models_url)["data"][0]["id"] == "standin-tiny"
    assert api.get(f"/api/v1/apps/{app_id}/diff?from=1&to=3").json["changed_keys"] == []

    # Remove it from the host; then the record can go too.
    assert api.delete(f"/api/v1/apps/{app_id}").status_code == 409  # still on its host
    succeeded(api, api.post(f"/api/v1/apps/{app_id}/remove").json["id"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)
    assert api.get(f"/api/v1/apps/{app_id}").json["status"] == "removed"
    assert all(m["name"] != "standin-tiny" for m in api.get("/api/v1/proxy/config").json["models"])

    # A removed application can be deployed again from its record, then removed for good.
    redeploy = api.post(f"/api/v1/apps/{app_id}/deploy", json={})
    assert redeploy.status_code == 202, redeploy.json
    succeeded(api, redeploy.json["id"])
    assert api.get(f"/api/v1/apps/{app_id}").json["status"] == "running"
    assert get_json(models_url)["data"][0]["id"] == "standin-tiny"
    succeeded(api, api.post(f"/api/v1/apps/{app_id}/remove").json["id"])
    assert api.delete(f"/api/v1/apps/{app_id}").status_code == 204
