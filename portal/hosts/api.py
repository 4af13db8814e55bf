"""REST endpoints of hosts: add, bulk add, list, show, edit, delete, bootstrap, host key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.operations.api import create_from_request
from portal.core.operations.schemas import OperationSchema
from portal.core.pagination import SelectPage
from portal.core.security import require_role
from portal.core.timeutil import utcnow
from portal.hosts import rotation, service
from portal.hosts.gpu_telemetry import history
from portal.hosts.schemas import (
    BootstrapManySchema,
    BootstrapOneSchema,
    DeleteQuerySchema,
    GpuSamplesQuerySchema,
    GpuSeriesSchema,
    HostDetailSchema,
    HostPatchSchema,
    HostQuerySchema,
    HostSchema,
    HostWriteSchema,
    ImportSchema,
    RotateCredentialsSchema,
    RotateOneSchema,
)
from portal.projects.access import project_role, target_project, visible_project_ids

blp = Blueprint("hosts", __name__, url_prefix="/api/v1/hosts", description="Hosts")


@blp.route("")
class HostCollection(MethodView):
    @project_role("viewer")
    @blp.arguments(HostQuerySchema, location="query")
    @blp.response(200, HostSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, filters: dict) -> Any:
        """List hosts, filtered by status, label (KEY or KEY=VALUE) or GPU model."""
        return service.hosts_query(**filters, project_ids=visible_project_ids())

    @project_role("operator")
    @blp.arguments(HostWriteSchema)
    @blp.response(201, HostDetailSchema)
    def post(self, body: dict) -> Any:
        """Add a host with an SSH private key or a password (stored encrypted, never shown)."""
        project = target_project(body.pop("project"), "operator")
        return service.create_host({**body, "project_id": project.id})


@blp.route("/import")
class HostImport(MethodView):
    @project_role("operator")
    @blp.arguments(ImportSchema)
    @blp.response(201, HostSchema(many=True))
    def post(self, body: dict) -> Any:
        """Add many hosts from an Ansible inventory (INI or YAML) or CSV; all or none."""
        project = target_project(body.pop("project"), "operator")
        content, file_format = body.pop("content"), body.pop("format")
        return service.import_hosts(content, file_format, body, project.id)


@blp.route("/bootstrap")
class HostBootstrapMany(MethodView):
    @project_role("operator")
    @blp.arguments(BootstrapManySchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Bootstrap many hosts in one operation (Ansible forks, per-host progress)."""
        host_ids = list(dict.fromkeys(body["host_ids"]))
        for host_id in host_ids:
            service.require_idle(service.visible_host(host_id, "operator"))
        params = {"host_ids": host_ids, "forks": body["forks"]}
        answer = create_from_request("bootstrap_hosts", params, target="hosts")
        service.assign_operation(host_ids, answer[0].id)
        return answer


@blp.route("/rotate-credentials")
class HostCredentialRotation(MethodView):
    @require_role("admin")
    @blp.arguments(RotateCredentialsSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Replace agents' certificates and tokens, and the portal's client certificate, live."""
        host_ids = body.get("host_ids")
        ids = rotation.plan_rotation(
            list(dict.fromkeys(host_ids)) if host_ids else None, body["portal_certificate"]
        )
        params = {"host_ids": ids, "forks": body["forks"],
                  "portal_certificate": body["portal_certificate"]}  # fmt: skip
        answer = create_from_request("rotate_agent_credentials", params, target="hosts")
        service.assign_operation(ids, answer[0].id)
        return answer


@blp.route("/<id:host_id>/rotate-credentials")
class HostItemCredentialRotation(MethodView):
    @require_role("admin")
    @blp.arguments(RotateOneSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, host_id: int) -> Any:
        """Replace one agent's certificate and token without downtime."""
        ids = rotation.plan_rotation([host_id], body["portal_certificate"])
        params = {"host_ids": ids, "forks": 1, "portal_certificate": body["portal_certificate"]}
        answer = create_from_request("rotate_agent_credentials", params, target=f"host:{host_id}")
        service.assign_operation(ids, answer[0].id)
        return answer


@blp.route("/<id:host_id>/gpu-samples")
class HostGpuSamples(MethodView):
    @project_role("viewer")
    @blp.arguments(GpuSamplesQuerySchema, location="query")
    @blp.response(200, GpuSeriesSchema(many=True))
    def get(self, query: dict, host_id: int) -> Any:
        """Each GPU's readings (utilisation, memory, temperature, power) of the health sweeps."""
        service.visible_host(host_id, "viewer", shared=True)
        since = utcnow() - timedelta(minutes=query["minutes"])
        return [{"index": i, "samples": s} for i, s in history(host_id, since).items()]


@blp.route("/<id:host_id>")
class HostItem(MethodView):
    @project_role("viewer")
    @blp.response(200, HostDetailSchema)
    def get(self, host_id: int) -> Any:
        """Show a host with its facts, GPUs, status history and containers (a project that
        sees it through a share: no containers)."""
        return service.visible_host(host_id, "viewer", shared=True)

    @project_role("operator")
    @blp.arguments(HostPatchSchema(partial=True))
    @blp.response(200, HostDetailSchema)
    def patch(self, body: dict, host_id: int) -> Any:
        """Change a host; a new address or SSH port forgets the recorded host key."""
        return service.update_host(service.visible_host(host_id, "operator"), body)

    @project_role("operator")
    @blp.arguments(DeleteQuerySchema, location="query")
    @blp.response(204)
    @blp.alt_response(202, schema=OperationSchema, description="cleanup=1: an operation")
    def delete(self, query: dict, host_id: int) -> Any:
        """Delete a host; with cleanup=1, first stop Spectr's containers and remove the agent."""
        host = service.visible_host(host_id, "operator")
        service.require_idle(host)
        if query["cleanup"]:
            operation, status, headers = create_from_request(
                "delete_host", {"host_id": host.id}, target=f"host:{host.id}"
            )
            if operation.state != "succeeded":  # an inline run may have deleted it already
                service.assign_operation([host.id], operation.id)
            return OperationSchema().dump(operation), status, headers
        service.delete_host(host)
        return None


@blp.route("/<id:host_id>/bootstrap")
class HostBootstrap(MethodView):
    @project_role("operator")
    @blp.arguments(BootstrapOneSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, host_id: int) -> Any:
        """Bootstrap (or re-bootstrap, idempotently) one host: Docker, agent, facts."""
        host = service.visible_host(host_id, "operator")
        service.require_idle(host)
        params = {"host_ids": [host.id], "forks": 1}
        answer = create_from_request("bootstrap_hosts", params, target=f"host:{host.id}")
        service.assign_operation([host.id], answer[0].id)
        return answer


@blp.route("/<id:host_id>/host-key")
class HostKey(MethodView):
    @project_role("operator")
    @blp.response(200, HostDetailSchema)
    def delete(self, host_id: int) -> Any:
        """Forget the recorded SSH host key; the next bootstrap records the key it meets."""
        host = service.visible_host(host_id, "operator")
        service.forget_host_key(host)
        return host
