"""Request and response shapes of the catalog API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from portal.catalog.vram import QUANTIZATIONS
from portal.core.converters import MAX_BIGINT, MAX_DATABASE_ID
from portal.core.fields import UtcDateTime

FORMATS = ("safetensors", "gguf", "pytorch", "onnx", "other")
SOURCE_KINDS = ("huggingface", "path", "image", "registry")  # registry: imported files
RUNTIME_KINDS = ("vllm", "ollama", "tgi", "llamacpp", "custom")


class ImageSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    reference = ma.fields.String(required=True, metadata={"example": "docker.io/library/redis:7"})
    registry = ma.fields.String(dump_only=True, attribute="registry_host")
    repository = ma.fields.String(dump_only=True)
    tag = ma.fields.String(dump_only=True, allow_none=True)
    digest = ma.fields.String(load_default=None, allow_none=True)
    size_bytes = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(0, MAX_BIGINT)
    )
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)
    description = ma.fields.String(load_default="", validate=validate.Length(max=4000))
    created_at = UtcDateTime(dump_only=True)


class ModelSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=validate.Length(1, 120))
    family = ma.fields.String(required=True, validate=validate.Length(1, 64))
    parameters_billions = ma.fields.Float(required=True, validate=validate.Range(0.001, 5000))
    quantization = ma.fields.String(required=True, validate=validate.OneOf(QUANTIZATIONS))
    format = ma.fields.String(required=True, validate=validate.OneOf(FORMATS))
    source_kind = ma.fields.String(required=True, validate=validate.OneOf(SOURCE_KINDS))
    source = ma.fields.String(required=True, validate=validate.Length(1, 512))
    context_length = ma.fields.Integer(required=True, validate=validate.Range(1, 10_000_000))
    license = ma.fields.String(required=True, validate=validate.Length(1, 64))
    size_bytes = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(0, MAX_BIGINT)
    )
    num_layers = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 1000)
    )
    num_kv_heads = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 1000)
    )
    head_dim = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 4096)
    )
    description = ma.fields.String(load_default="", validate=validate.Length(max=4000))
    created_at = UtcDateTime(dump_only=True)


class RuntimeSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    kind = ma.fields.String(required=True, validate=validate.OneOf(RUNTIME_KINDS))
    image = ma.fields.String(required=True)
    command_template = ma.fields.List(ma.fields.String(), load_default=list)
    env = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)
    port = ma.fields.Integer(required=True, validate=validate.Range(1, 65535))
    health_path = ma.fields.String(load_default="/health")
    openai_base_path = ma.fields.String(load_default="/v1")
    requires_gpu = ma.fields.Boolean(load_default=True)
    multi_gpu = ma.fields.Boolean(load_default=False)
    overhead_mib = ma.fields.Integer(load_default=1024, validate=validate.Range(0, 1_000_000))
    supported_formats = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(FORMATS)), load_default=list
    )
    description = ma.fields.String(load_default="", validate=validate.Length(max=4000))
    created_at = UtcDateTime(dump_only=True)


class EstimateQuerySchema(ma.Schema):
    runtime_id = ma.fields.Integer(load_default=None, validate=validate.Range(1, MAX_DATABASE_ID))
    context_length = ma.fields.Integer(load_default=None, validate=validate.Range(1, 10_000_000))
    concurrent_sequences = ma.fields.Integer(load_default=1, validate=validate.Range(1, 1024))


class EstimateSchema(ma.Schema):
    weights_mib = ma.fields.Integer()
    kv_cache_mib = ma.fields.Integer()
    overhead_mib = ma.fields.Integer()
    total_mib = ma.fields.Integer()
    context_length = ma.fields.Integer()
    concurrent_sequences = ma.fields.Integer()
    notes = ma.fields.List(ma.fields.String())


class PlacementCandidateSchema(ma.Schema):
    host_id = ma.fields.Integer(validate=validate.Range(1, MAX_DATABASE_ID))
    name = ma.fields.String()
    gpu_indexes = ma.fields.List(ma.fields.Integer())
    per_gpu_need_mib = ma.fields.Integer()
    headroom_mib = ma.fields.Integer()
    holds_model = ma.fields.Boolean(metadata={"description": "its cache holds the model's files"})


class PlacementRefusalSchema(ma.Schema):
    host_id = ma.fields.Integer(validate=validate.Range(1, MAX_DATABASE_ID))
    name = ma.fields.String()
    reason = ma.fields.String()


class PlacementSchema(ma.Schema):
    model_id = ma.fields.Integer()
    runtime = ma.fields.String(
        allow_none=True, metadata={"description": "null when no runtime serves the model"}
    )
    estimate = ma.fields.Nested(EstimateSchema)
    candidates = ma.fields.List(ma.fields.Nested(PlacementCandidateSchema))
    refused = ma.fields.List(ma.fields.Nested(PlacementRefusalSchema))
