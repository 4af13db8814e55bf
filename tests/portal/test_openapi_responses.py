"""Every GET answers what the OpenAPI document says, for rows as sparse as the API lets one make
them: fields left empty come back null only where the document says they may."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portal.admin import service as admin_service
from portal.core.operations import service as operations
from tests.portal.conftest import PASSWORD, ApiClient

# GETs that reach out to a host, an agent or a registry: their shapes are checked where those
# run for real (tests/hosts, tests/apps, tests/registry).
REACHES_OUT = re.compile(
    r"/(logs|adoptable|repositories|tags)(/|$)|/registries/spectr$"
    r"|/hosts/\{host_id\}/(containers|images|volumes|networks)"
)
QUERIES = {"/api/v1/apps/{app_id}/diff": {"from": 1, "to": 1}}  # its required query
CHECKS = [
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


def _seed(api: ApiClient) -> dict[str, Any]:
    """Rows with only what each create requires; returns the ids by path parameter name."""

    def created(path: str, body: dict) -> dict:
        answer = api.post(path, json=body)
        assert answer.status_code in (200, 201, 202), (path, answer.get_json())
        return answer.get_json()

    host = created(
        "/api/v1/hosts", {"name": "sparse", "address": "192.0.2.30", "ssh_password": "pw"}
    )
    image = created("/api/v1/catalog/images", {"reference": "registry.example/app:1"})
    model = created(
        "/api/v1/models",
        {"name": "tiny", "family": "llama", "parameters_billions": 1, "quantization": "q4_0",
         "format": "gguf", "source_kind": "path", "source": "/models/tiny.gguf",
         "context_length": 2048, "license": "mit"},
    )  # fmt: skip
    runtime = created(
        "/api/v1/runtimes",
        {"name": "rt", "kind": "custom", "image": "registry.example/rt:1", "port": 8080},
    )
    route = created(
        "/api/v1/proxy/routes",
        {"name": "web", "path_prefix": "/web", "upstreams": ["http://127.0.0.1:9001"]},
    )
    created("/api/v1/proxy/keys", {"name": "team"})
    webhook = created(
        "/api/v1/monitoring/webhooks", {"name": "hook", "url": "http://127.0.0.1:9/hook"}
    )
    registry = created(
        "/api/v1/registries", {"name": "mirror", "url": "https://registry.example:5000"}
    )
    source = created(
        "/api/v1/model-sources",
        {"name": "hub", "kind": "huggingface", "url": "https://hub.example:8443"},
    )
    app = created(
        "/api/v1/apps",
        {"name": "web", "host_id": host["id"], "kind": "container", "deploy": False,
         "container": {"image": "registry.example/app:1"}},
    )  # fmt: skip
    operation, _ = operations.create_operation("noop")
    return {
        "host_id": host["id"], "item_id": image["id"], "image_id": image["id"],
        "model_id": model["id"], "route_id": route["id"], "webhook_id": webhook["id"],
        "registry_id": registry["id"], "source_id": source["id"], "app_id": app["id"],
        "operation_id": operation.id, "user_id": api.user_id, "runtime_id": runtime["id"],
    }  # fmt: skip


@pytest.mark.slow
def test_every_get_answers_as_documented_for_sparse_rows(queue_only_app) -> None:
    user = admin_service.create_user("schema-admin", PASSWORD, "admin")
    _, token = admin_service.create_token(user, "schema", 1)
    api = ApiClient(queue_only_app.test_client(), token)
    api.user_id = user.id
    ids = _seed(api)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", queue_only_app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET" or REACHES_OUT.search(operation.path):
            continue
        names = re.findall(r"\{(\w+)\}", operation.path)
        if any(name not in ids for name in names):
            continue
        case = operation.Case(
            path_parameters={name: ids[name] for name in names},
            query=QUERIES.get(operation.path),
        )
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (operation.label, response.text)
        case.validate_response(response, checks=CHECKS)
        checked.append(operation.label)
    assert len(checked) >= 35, checked
