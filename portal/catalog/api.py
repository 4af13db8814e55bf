"""REST endpoints of the catalog: images, models (estimate, placement), runtimes, seeding."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView
from marshmallow import validate

from portal.catalog import seeding, service
from portal.catalog.schemas import (
    EstimateQuerySchema,
    EstimateSchema,
    ImageSchema,
    ModelSchema,
    PlacementSchema,
    RuntimeSchema,
)
from portal.core.api_base import Blueprint
from portal.core.converters import MAX_DATABASE_ID
from portal.core.operations.api import create_from_request
from portal.core.operations.schemas import OperationSchema
from portal.core.security import require_role
from portal.hosts.service import visible_host
from portal.projects.access import visible_project_ids

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Images, models, runtimes")


def sent_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Keep only the fields the caller sent (a PATCH must not reset the others to defaults)."""
    sent = request.get_json(silent=True) or {}
    return {name: value for name, value in body.items() if name in sent}


def crud_routes(path: str, schema: type[ma.Schema], create, get, update, delete, listing) -> None:  # type: ignore[no-untyped-def]
    """Register collection and item endpoints for one kind of catalog entry."""
    label = schema.__name__.removesuffix("Schema")
    patch_schema = type(f"{label}PatchSchema", (schema,), {})

    class Collection(MethodView):
        @require_role("viewer")
        @blp.response(200, schema(many=True))
        def get(self) -> Any:
            return listing()

        @require_role("operator")
        @blp.arguments(schema)
        @blp.response(201, schema)
        def post(self, body: dict) -> Any:
            return create(body)

    class Item(MethodView):
        @require_role("viewer")
        @blp.response(200, schema)
        def get(self, item_id: int) -> Any:
            return get(item_id)

        @require_role("operator")
        @blp.arguments(patch_schema(partial=True))
        @blp.response(200, schema)
        def patch(self, body: dict, item_id: int) -> Any:
            return update(item_id, sent_fields(body))

        @require_role("operator")
        @blp.response(204)
        def delete(self, item_id: int) -> None:
            delete(item_id)

    for view, suffix in ((Collection, ""), (Item, "/<id:item_id>")):
        view.__name__ = f"{label}{view.__name__}"
        for method in ("get", "post", "patch", "delete"):
            handler = getattr(view, method, None)
            if handler is not None:
                handler.__doc__ = f"{method.upper()} {label.lower()}{' entry' if suffix else 's'}."
        blp.route(f"{path}{suffix}")(view)


crud_routes(
    "/catalog/images",
    ImageSchema,
    service.create_image,
    service.get_image,
    service.update_image,
    service.delete_image,
    service.list_images,
)
crud_routes(
    "/models",
    ModelSchema,
    service.create_model,
    service.get_model,
    service.update_model,
    service.delete_model,
    service.list_models,
)
crud_routes(
    "/runtimes",
    RuntimeSchema,
    service.create_runtime,
    service.get_runtime,
    service.update_runtime,
    service.delete_runtime,
    service.list_runtimes,
)


@blp.route("/models/<id:model_id>/estimate")
class ModelEstimate(MethodView):
    @require_role("viewer")
    @blp.arguments(EstimateQuerySchema, location="query")
    @blp.response(200, EstimateSchema)
    def get(self, query: dict, model_id: int) -> Any:
        """Estimate the GPU memory the model needs (weights + KV cache + runtime overhead)."""
        model = service.get_model(model_id)
        runtime = service.get_runtime(query["runtime_id"]) if query["runtime_id"] else None
        estimate = service.estimate_for(
            model, runtime, query["context_length"], query["concurrent_sequences"]
        )
        return estimate.as_dict()


@blp.route("/models/<id:model_id>/placement")
class ModelPlacement(MethodView):
    @require_role("viewer")
    @blp.arguments(EstimateQuerySchema, location="query")
    @blp.response(200, PlacementSchema)
    def get(self, query: dict, model_id: int) -> Any:
        """Rank ready hosts (of your projects) whose free GPU memory fits the model; say why
        others do not."""
        return service.placement(
            model_id,
            query["runtime_id"],
            query["context_length"],
            query["concurrent_sequences"],
            visible_project_ids(),
        )


class PullSchema(ma.Schema):
    host_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))


@blp.route("/catalog/images/<id:image_id>/pull")
class ImagePull(MethodView):
    @require_role("operator")
    @blp.arguments(PullSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, image_id: int) -> Any:
        """Pull the image onto a host (an operation)."""
        image = service.get_image(image_id)
        visible_host(body["host_id"], "operator")
        params = {"image_id": image.id, "host_id": body["host_id"]}
        return create_from_request("catalog.pull_image", params, target=f"image:{image.reference}")


class SeedResultSchema(ma.Schema):
    runtimes = ma.fields.Integer()
    models = ma.fields.Integer()
    images = ma.fields.Integer()


@blp.route("/catalog/images/<id:image_id>/remove")
class ImageRemove(MethodView):
    @require_role("operator")
    @blp.arguments(PullSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, image_id: int) -> Any:
        """Remove the image from a host (an operation)."""
        image = service.get_image(image_id)
        visible_host(body["host_id"], "operator")
        params = {"image_id": image.id, "host_id": body["host_id"]}
        return create_from_request(
            "catalog.remove_image", params, target=f"image:{image.reference}"
        )


class ImageUsageSchema(ma.Schema):
    image_id = ma.fields.Integer()
    reference = ma.fields.String()
    apps = ma.fields.List(ma.fields.Dict())
    hosts = ma.fields.List(ma.fields.Dict())


@blp.route("/catalog/images/<id:image_id>/usage")
class ImageUsage(MethodView):
    @require_role("viewer")
    @blp.response(200, ImageUsageSchema)
    def get(self, image_id: int) -> Any:
        """Which applications use the image and which ready hosts have it (of your projects)."""
        return service.image_usage(image_id, visible_project_ids())


class SyncSchema(ma.Schema):
    registry_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    repository = ma.fields.String(
        required=True, validate=validate.Regexp(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    )


@blp.route("/catalog/images/sync")
class ImageSync(MethodView):
    @require_role("operator")
    @blp.arguments(SyncSchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict) -> Any:
        """Add every tag of a registry repository to the image catalog (an operation)."""
        from portal.registry.service import get_registry

        registry = get_registry(body["registry_id"])
        return create_from_request("catalog.sync_registry", body, target=f"registry:{registry.id}")


@blp.route("/catalog/seed")
class CatalogSeed(MethodView):
    @require_role("admin")
    @blp.response(200, SeedResultSchema)
    def post(self) -> Any:
        """Add the shipped runtimes, models and images that are missing."""
        return seeding.seed_catalog()
