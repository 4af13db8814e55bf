"""REST endpoints of registries: register, check, browse, delete tags, deploy, GC, images in."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.errors import NotFound, SpectrError, ValidationFailed
from portal.core.operations.api import create_from_request
from portal.core.operations.schemas import OperationSchema
from portal.core.request_input import request_body_limit
from portal.core.security import require_role
from portal.registry import deploy, images_in, service
from portal.registry.models import SPECTR
from portal.registry.schemas import (
    REFERENCE_ERROR,
    REFERENCE_PATTERN,
    REPOSITORY_ERROR,
    REPOSITORY_PATTERN,
    AccessSchema,
    CheckResultSchema,
    CursorQuerySchema,
    DeletedTagSchema,
    DeploySchema,
    ImportQuerySchema,
    ManifestSchema,
    MirrorSchema,
    NamesPageSchema,
    RegistryPatchSchema,
    RegistrySchema,
    RegistryWriteSchema,
)

blp = Blueprint(
    "registries", __name__, url_prefix="/api/v1/registries", description="Registries and images"
)
ARCHIVE_TYPES = ("application/x-tar", "application/octet-stream")


@blp.route("")
class RegistryCollection(MethodView):
    @require_role("viewer")
    @blp.response(200, RegistrySchema(many=True))
    def get(self) -> Any:
        """List registries: Spectr's own first, then external ones."""
        return service.list_registries()

    @require_role("operator")
    @blp.arguments(RegistryWriteSchema)
    @blp.response(201, RegistrySchema)
    def post(self, body: dict) -> Any:
        """Register an external registry (password stored encrypted, never shown)."""
        return service.create_registry(body)


@blp.route("/<id:registry_id>")
class RegistryItem(MethodView):
    @require_role("viewer")
    @blp.response(200, RegistrySchema)
    def get(self, registry_id: int) -> Any:
        """Show a registry."""
        return service.get_registry(registry_id)

    @require_role("operator")
    @blp.arguments(RegistryPatchSchema)
    @blp.response(200, RegistrySchema)
    def patch(self, body: dict, registry_id: int) -> Any:
        """Change a registry's address, credentials or CA."""
        return service.update_registry(service.get_registry(registry_id), body)

    @require_role("operator")
    @blp.response(204)
    def delete(self, registry_id: int) -> None:
        """Forget a registry (its images stay where they are)."""
        service.delete_registry(service.get_registry(registry_id))


@blp.route("/<id:registry_id>/check")
class RegistryCheck(MethodView):
    @require_role("operator")
    @blp.response(200, CheckResultSchema)
    def post(self, registry_id: int) -> Any:
        """Test the connection: TLS, credentials, API v2; says what is wrong when it fails."""
        return service.check_connection(service.get_registry(registry_id))


@blp.route("/<id:registry_id>/repositories")
class RepositoryCollection(MethodView):
    @require_role("viewer")
    @blp.arguments(CursorQuerySchema, location="query")
    @blp.response(200, NamesPageSchema)
    def get(self, query: dict, registry_id: int) -> Any:
        """One page of repositories (n per page; pass next_last as last for the next)."""
        return service.repositories(service.get_registry(registry_id), query["n"], query["last"])


@blp.route("/<id:registry_id>/repositories/<path:repository>/tags")
class TagCollection(MethodView):
    @require_role("viewer")
    @blp.arguments(CursorQuerySchema, location="query")
    @blp.response(200, NamesPageSchema)
    def get(self, query: dict, registry_id: int, repository: str) -> Any:
        """One page of a repository's tags (n per page; pass next_last as last)."""
        registry = service.get_registry(registry_id)
        return service.tags(registry, _repository(repository), query["n"], query["last"])


@blp.route("/<id:registry_id>/repositories/<path:repository>/tags/<reference>")
class TagItem(MethodView):
    @require_role("viewer")
    @blp.response(200, ManifestSchema)
    def get(self, registry_id: int, repository: str, reference: str) -> Any:
        """Describe a tag or digest: digest, size, created, platforms."""
        registry = service.get_registry(registry_id)
        return service.manifest(registry, _repository(repository), _reference(reference))

    @require_role("operator")
    @blp.response(200, DeletedTagSchema)
    def delete(self, registry_id: int, repository: str, reference: str) -> Any:
        """Delete a tag (its manifest: other tags of the same digest go too)."""
        registry = service.get_registry(registry_id)
        repository, reference = _repository(repository), _reference(reference)
        digest = service.delete_tag(registry, repository, reference)
        return {"repository": repository, "tag": reference, "digest": digest}


@blp.route("/<id:registry_id>/gc")
class RegistryGarbageCollection(MethodView):
    @require_role("operator")
    @blp.response(202, OperationSchema)
    def post(self, registry_id: int) -> Any:
        """Garbage-collect a registry Spectr deployed, as an operation with its log."""
        registry = service.get_registry(registry_id)
        if registry.kind != SPECTR:
            raise ValidationFailed("Only a registry Spectr deployed can be garbage-collected.")
        params = {"registry_id": registry.id}
        return create_from_request("registry_gc", params, target=f"registry:{registry.id}")


@blp.route("/spectr")
class SpectrRegistry(MethodView):
    @require_role("viewer")
    @blp.response(200, RegistrySchema)
    def get(self) -> Any:
        """Show Spectr's own registry (404 until it is deployed)."""
        registry = service.spectr_registry()
        if registry is None:
            raise NotFound("Spectr's registry is not deployed yet.")
        return registry


@blp.route("/spectr/deploy")
class SpectrRegistryDeploy(MethodView):
    @require_role("admin")
    @blp.arguments(DeploySchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Deploy (or redeploy, idempotently) Spectr's registry on the Spectr node or a host."""
        params = deploy.deploy_params(body)
        return create_from_request("deploy_registry", params, target="registry:spectr")


@blp.route("/spectr/access")
class SpectrRegistryAccess(MethodView):
    @require_role("operator")
    @blp.arguments(AccessSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Make hosts trust and log in to Spectr's registry (an operation; bootstrap's part)."""
        service.require_spectr_registry()
        from portal.hosts.service import visible_host

        host_ids = list(dict.fromkeys(body["host_ids"]))
        for host_id in host_ids:
            visible_host(host_id, "operator")
        return create_from_request("registry_access", {"host_ids": host_ids}, target="hosts")


@blp.route("/spectr/mirror")
class SpectrRegistryMirror(MethodView):
    @require_role("operator")
    @blp.arguments(MirrorSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Copy an image into Spectr's registry from another registry or the node's engine."""
        service.require_spectr_registry()
        if body["source_registry_id"] is not None:
            service.get_registry(body["source_registry_id"])
        return create_from_request("mirror_image", body, target="registry:spectr")


@blp.route("/spectr/imports")
class SpectrRegistryImport(MethodView):
    @request_body_limit(None)  # streamed to disk: archives and weights of any size
    @require_role("operator")
    @blp.arguments(ImportQuerySchema, location="query")
    @blp.response(202, OperationSchema)
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    )
    def post(self, query: dict) -> Any:
        """Upload a `docker save` archive as the body (streamed to disk); an operation imports it."""
        service.require_spectr_registry()
        if request.mimetype not in ARCHIVE_TYPES:
            raise UnsupportedArchiveType(
                "Send the archive as the raw request body with Content-Type application/x-tar."
            )
        path, size = images_in.receive_upload(request.stream, request.content_length)
        params = {"path": str(path), "size": size, **query}
        try:
            return create_from_request("import_image_archive", params, target="registry:spectr")
        except Exception:
            path.unlink(missing_ok=True)
            raise


class UnsupportedArchiveType(SpectrError):
    status = 415
    code = "unsupported_media_type"


def _repository(value: str) -> str:
    if not re.fullmatch(REPOSITORY_PATTERN, value):
        raise ValidationFailed(REPOSITORY_ERROR, {"repository": [REPOSITORY_ERROR]})
    return value


def _reference(value: str) -> str:
    if not re.fullmatch(REFERENCE_PATTERN, value):
        raise ValidationFailed(REFERENCE_ERROR, {"reference": [REFERENCE_ERROR]})
    return value
