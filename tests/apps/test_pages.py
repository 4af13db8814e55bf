"""Pages: catalog browse and edit, model detail with placement, the deploy-model form, the
applications list, an application's page with its diff and command box."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import docker
import pytest
from flask.testing import FlaskClient

from tests.apps.helpers import get_json, log_in

A10 = "NVIDIA A10"


def test_catalog_pages_browse_edit_and_place(
    client: FlaskClient, create_user: Callable[..., Any], seeded: Any, make_host: Callable[..., Any]
) -> None:
    make_host("a10-box", [(A10, 23028, 0)])  # stand-in GPU facts
    csrf = log_in(client, create_user)
    index = client.get("/catalog").get_data(as_text=True)
    assert "llama-3.1-8b-instruct" in index and "vllm/vllm-openai" in index
    bad = client.post(
        "/catalog/images",
        data={"csrf_token": csrf, "reference": "team/App"},
        follow_redirects=True,
    )
    assert "must be lowercase" in bad.get_data(as_text=True)
    model_link = re.search(r'href="(/catalog/models/\d+)">qwen2.5-7b-instruct<', index).group(1)
    page = client.get(model_link + "?context_length=8192").get_data(as_text=True)
    assert "a10-box" in page and 'id="deploy-model"' in page and "Needs about" in page
    saved = client.post(model_link + "/edit", data={
        "csrf_token": csrf, "name": "qwen2.5-7b-instruct", "family": "qwen", "parameters_billions": "7.62",
        "quantization": "int4", "format": "safetensors", "source_kind": "huggingface",
        "source": "Qwen/Qwen2.5-7B-Instruct-AWQ", "context_length": "32768", "license": "apache-2.0",
    }, follow_redirects=True)  # fmt: skip
    assert "Model saved." in saved.get_data(
        as_text=True
    ) and "Qwen2.5-7B-Instruct-AWQ" in saved.get_data(as_text=True)
    wrong = client.post(
        model_link + "/edit", data={"csrf_token": csrf, "quantization": "q1"}, follow_redirects=True
    )
    assert "quantization" in wrong.get_data(as_text=True)


def test_deploy_model_form_refuses_an_oversize_request(
    client: FlaskClient, create_user: Callable[..., Any], seeded: Any, make_host: Callable[..., Any]
) -> None:
    host = make_host("a10-box", [(A10, 23028, 0)])  # stand-in GPU facts
    csrf = log_in(client, create_user)
    index = client.get("/catalog").get_data(as_text=True)
    model_link = re.search(r'href="(/catalog/models/\d+)">llama-3.1-70b-instruct<', index).group(1)
    runtime = re.search(
        r'<option value="(\d+)" >vllm<', client.get(model_link).get_data(as_text=True)
    ).group(1)
    answer = client.post(model_link + "/deploy", data={
        "csrf_token": csrf, "name": "big", "runtime_id": runtime, "host_id": host.id, "gpus": "0", "context_length": "4096",
    }, follow_redirects=True)  # fmt: skip
    assert "GPU 0 of &#39;a10-box&#39; has 23028 MiB free" in answer.get_data(as_text=True)
    assert "No applications yet." in client.get("/apps").get_data(as_text=True)


@pytest.mark.slow
@pytest.mark.docker
def test_deploy_model_form_then_app_page_diff_and_command_box(
    client: FlaskClient,
    create_user: Callable[..., Any],
    local_host: Any,
    standin_image: str,
    docker_client: docker.DockerClient,
    unique_name: Callable[[str], str],
    cleanup_containers: list[str],
    free_port: Callable[[], int],
) -> None:
    from portal.catalog import service as catalog

    model = catalog.create_model({
        "name": "standin-page", "family": "standin", "parameters_billions": 0.01, "quantization": "fp16",
        "format": "other", "source_kind": "image", "source": standin_image, "context_length": 2048, "license": "mit",
    })  # fmt: skip
    runtime = catalog.create_runtime({
        "name": "standin", "kind": "custom", "image": standin_image, "port": 8000, "requires_gpu": False,
        "command_template": ["python3", "/srv/server.py", "--port", "{port}", "--model", "{model_name}"],
    })  # fmt: skip
    csrf = log_in(client, create_user)
    name, port = unique_name("page"), free_port()
    cleanup_containers.append(name)
    answer = client.post(f"/catalog/models/{model.id}/deploy", data={
        "csrf_token": csrf, "name": name, "runtime_id": runtime.id, "host_id": local_host.id, "host_port": port,
    })  # fmt: skip
    assert answer.status_code == 302 and "/apps/" in answer.location
    assert get_json(f"http://127.0.0.1:{port}/v1/models")["data"][0]["id"] == "standin-page"
    app_page = answer.location
    listing = client.get("/apps").get_data(as_text=True)
    assert name in listing and "running" in listing and local_host.name in listing
    ran = client.post(
        app_page + "/exec", data={"csrf_token": csrf, "command": "cat /srv/server.py"}
    )
    assert "stand-in for an LLM model server" in ran.get_data(as_text=True)
    before = docker_client.containers.get(name)
    client.post(app_page + "/action/restart", data={"csrf_token": csrf})
    after = docker_client.containers.get(name)
    assert after.id == before.id  # restarted, not re-created
    assert after.attrs["State"]["StartedAt"] != before.attrs["State"]["StartedAt"]
    shown = client.get(app_page + "?from=1&to=1").get_data(as_text=True)
    assert 'id="revision-diff"' in shown and "(no difference)" in shown and 'id="app-log"' in shown
    removed = client.post(app_page + "/action/remove", data={"csrf_token": csrf})
    assert removed.status_code == 302
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)
