"""Deploy, revise, roll back and remove a model server on a real SSH host with its own Docker
engine (a Docker-in-Docker test host), through spectr.core.deploy_app / remove_app run by
ansible-runner over SSH; each step checked on that host's engine.

The host row is made ready by hand instead of by bootstrap (which installs the agent the
engine calls need; the hosts context tests that), so start / stop are covered on the Spectr
node (test_model_lifecycle.py), not here. The server is the stand-in model server image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portal.extensions import db
from portal.hosts.models import READY, Host
from tests.apps.helpers import succeeded
from tests.portal.conftest import ApiClient
from tests.support import testhosts
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def ssh_host(standin_image: str) -> Iterator[TestHost]:
    host = start_test_host("apps", dind=True)
    try:
        host.load_image(standin_image)  # no registry to pull from
        yield host
    finally:
        host.remove()
        cleanup_key_pair(host.key_pair)


def _inspect(host: TestHost, name: str) -> dict[str, Any] | None:
    """The container as the host's own engine shows it, or None when it has none by that name."""
    try:
        return json.loads(host.ssh("docker", "inspect", name))[0]
    except testhosts.TestHostError as exc:
        if "No such object" in str(exc):
            return None
        raise


def _models_on_host(host: TestHost, port: int) -> str:
    for _ in range(60):
        try:
            return json.loads(host.ssh("curl", "-sf", f"http://127.0.0.1:{port}/v1/models"))[
                "data"
            ][0]["id"]
        except Exception:
            host.ssh("sleep", "0.25")
    raise AssertionError("the model server never answered on the host")


def test_model_server_on_an_ssh_host(
    api_as: Callable[[str], ApiClient],
    app: Any,
    ssh_host: TestHost,
    standin_image: str,
) -> None:
    row = Host(name=ssh_host.container_name, address=ssh_host.address, ssh_port=ssh_host.port, ssh_user="root",
               ssh_private_key=ssh_host.private_key_path.read_text(), status=READY)  # fmt: skip
    db.session.add(row)
    db.session.commit()
    api = api_as("operator")
    runtime = api.post("/api/v1/runtimes", json={
        "name": "standin", "kind": "custom", "image": standin_image, "port": 8000, "requires_gpu": False,
        "command_template": ["python3", "/srv/server.py", "--port", "{port}", "--model", "{model_name}"],
    }).json  # fmt: skip
    model = api.post("/api/v1/models", json={
        "name": "standin-remote", "family": "standin", "parameters_billions": 0.01, "quantization": "fp16",
        "format": "other", "source_kind": "image", "source": standin_image, "context_length": 2048, "license": "mit",
    }).json  # fmt: skip
    name = "spectr-test-remote-llm"
    created = api.post(f"/api/v1/models/{model['id']}/deploy", json={
        "name": name, "runtime_id": runtime["id"], "host_id": row.id, "host_port": 18080, "pull": "never",
    })  # fmt: skip
    assert created.status_code == 201, created.json
    assert succeeded(api, created.json["last_operation_id"])["result"]["changed"] is True
    app_id = created.json["id"]
    assert _inspect(ssh_host, name)["Config"]["Labels"]["spectr.revision"] == "1"
    assert _models_on_host(ssh_host, 18080) == "standin-remote"

    spec = created.json["revisions"][0]["spec"]
    spec["command"] = ["python3", "/srv/server.py", "--port", "8000", "--model", "renamed"]
    revised = api.post(f"/api/v1/apps/{app_id}/revisions", json={"container": spec})
    succeeded(api, revised.json["last_operation_id"])
    assert _inspect(ssh_host, name)["Config"]["Labels"]["spectr.revision"] == "2"
    assert _models_on_host(ssh_host, 18080) == "renamed"

    again = api.post(f"/api/v1/apps/{app_id}/deploy", json={"revision": 2}).json
    assert succeeded(api, again["id"])["result"]["changed"] is False

    rolled = api.post(f"/api/v1/apps/{app_id}/rollback", json={"revision": 1}).json
    succeeded(api, rolled["id"])
    assert _models_on_host(ssh_host, 18080) == "standin-remote"

    succeeded(api, api.post(f"/api/v1/apps/{app_id}/remove").json["id"])
    assert _inspect(ssh_host, name) is None
