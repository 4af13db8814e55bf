"""REST endpoints of model artifacts: uploads and imports, revisions, hosts, distribution."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from portal.artifacts import service, sources
from portal.artifacts.schemas import (
    SOURCE_FIELDS,
    DistributeSchema,
    HostModelSchema,
    ModelImportSchema,
    ModelRevisionSchema,
    ModelSourceSchema,
    RemoveFromHostSchema,
    UploadQuerySchema,
)
from portal.artifacts.staging import ARCHIVE_TYPES
from portal.catalog import service as catalog
from portal.core.api_base import Blueprint
from portal.core.errors import Forbidden, SpectrError
from portal.core.operations.api import accepted
from portal.core.operations.schemas import OperationSchema
from portal.core.request_input import request_body_limit
from portal.core.security import require_principal, require_role
from portal.hosts.service import visible_host
from portal.projects.access import visible_project_ids

blp = Blueprint(
    "model_artifacts", __name__, url_prefix="/api/v1", description="Model files: import, hosts"
)
FILE_TYPES = ("application/octet-stream",)


class UnsupportedUploadType(SpectrError):
    status = 415
    code = "unsupported_media_type"


@blp.route("/models/uploads")
class ModelUpload(MethodView):
    @request_body_limit(None)  # streamed to disk: archives and weights of any size
    @require_role("operator")
    @blp.arguments(UploadQuerySchema, location="query")
    @blp.response(202, OperationSchema)
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                kind: {"schema": {"type": "string", "format": "binary"}}
                for kind in (*FILE_TYPES, *ARCHIVE_TYPES)
            },
        }
    )
    def post(self, query: dict) -> Any:
        """Upload one model file (octet-stream) or a tar of the model folder; an operation stores it."""
        if request.mimetype not in (*FILE_TYPES, *ARCHIVE_TYPES):
            raise UnsupportedUploadType(
                "Send the model as the raw request body: Content-Type application/octet-stream "
                "for one file (a GGUF), application/x-tar or application/gzip for a folder."
            )
        extra = {"overrides": {"license": query["license"]}} if query.get("license") else {}
        operation = service.import_upload(
            request.stream,
            request.content_length,
            query["filename"],
            query["name"],
            archive=request.mimetype in ARCHIVE_TYPES,
            extra=extra,
        )
        return accepted(operation)


@blp.route("/models/imports")
class ModelImport(MethodView):
    @require_role("operator")
    @blp.arguments(ModelImportSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Import from a path on the Spectr node (admin), a Hub mirror, a bucket or a registry."""
        extra = {"overrides": body["overrides"]}
        if body.get("path"):
            if not require_principal().has_role("admin"):
                raise Forbidden("Importing a path on the Spectr node needs the admin role.")
            return accepted(service.import_folder(body["name"], body["path"], extra))
        kind = next(key for key in SOURCE_FIELDS if body.get(key))
        return accepted(service.import_from(body["name"], {"kind": kind, **body[kind]}, extra))


@blp.route("/model-sources")
class ModelSources(MethodView):
    @require_role("viewer")
    @blp.response(200, ModelSourceSchema(many=True))
    def get(self) -> Any:
        """Internal mirrors models are imported from (credentials are never shown)."""
        return sources.list_sources()

    @require_role("admin")
    @blp.arguments(ModelSourceSchema)
    @blp.response(201, ModelSourceSchema)
    def post(self, body: dict) -> Any:
        """Register a Hugging Face-compatible mirror or an S3-compatible service."""
        return sources.create_source(body)


@blp.route("/model-sources/<id:source_id>")
class ModelSourceItem(MethodView):
    @require_role("viewer")
    @blp.response(200, ModelSourceSchema)
    def get(self, source_id: int) -> Any:
        """One mirror."""
        return sources.get_source(source_id)

    @require_role("admin")
    @blp.response(204)
    def delete(self, source_id: int) -> None:
        """Forget a mirror."""
        sources.delete_source(sources.get_source(source_id))


@blp.route("/models/<id:model_id>/revisions")
class ModelRevisions(MethodView):
    @require_role("viewer")
    @blp.response(200, ModelRevisionSchema(many=True))
    def get(self, model_id: int) -> Any:
        """The model's imported revisions, newest first, with their files and digests."""
        return service.revisions(catalog.get_model(model_id))


@blp.route("/models/<id:model_id>/hosts")
class ModelHosts(MethodView):
    @require_role("viewer")
    @blp.response(200, HostModelSchema(many=True))
    def get(self, model_id: int) -> Any:
        """The hosts whose model cache holds (or failed to take) a revision of the model."""
        return service.holders(catalog.get_model(model_id), visible_project_ids())


@blp.route("/models/<id:model_id>/distribute")
class ModelDistribute(MethodView):
    @require_role("operator")
    @blp.arguments(DistributeSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, model_id: int) -> Any:
        """Put a revision (the latest by default) on hosts; 409 when a disk cannot hold it."""
        model = catalog.get_model(model_id)
        for host_id in body["host_ids"]:
            visible_host(host_id, "operator")
        return accepted(service.distribute(model, body["host_ids"], body["revision"]))


@blp.route("/models/<id:model_id>/hosts/<id:host_id>")
class ModelOnHost(MethodView):
    @require_role("operator")
    @blp.arguments(RemoveFromHostSchema, location="query")
    @blp.response(202, OperationSchema)
    def delete(self, query: dict, model_id: int, host_id: int) -> Any:
        """Remove a revision from a host's cache; 409 while an application there uses it."""
        model = catalog.get_model(model_id)
        return accepted(
            service.remove_from_host(model, visible_host(host_id, "operator"), query["revision"])
        )


@blp.route("/hosts/<id:host_id>/models")
class HostModels(MethodView):
    @require_role("viewer")
    @blp.response(200, HostModelSchema(many=True))
    def get(self, host_id: int) -> Any:
        """The model revisions in one host's cache, with sizes."""
        return service.host_models(visible_host(host_id, "viewer"))
