"""Request and response shapes of the model artifacts API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from portal.artifacts.models import SOURCE_KINDS
from portal.catalog.schemas import ModelSchema
from portal.core.converters import MAX_DATABASE_ID
from portal.core.fields import PartialLoad, UtcDateTime

# Catalog fields a person may set at import time; they win over what the files say.
OVERRIDABLE = ("family", "parameters_billions", "quantization", "format", "context_length",
               "license", "num_layers", "num_kv_heads", "head_dim", "description")  # fmt: skip


class ModelOverridesSchema(PartialLoad, ModelSchema):
    class Meta:
        fields = OVERRIDABLE


class UploadQuerySchema(ma.Schema):
    name = ma.fields.String(
        required=True, metadata={"description": "the model's name (new or existing)"}
    )
    filename = ma.fields.String(
        load_default="model.gguf",
        validate=validate.Length(1, 255),
        metadata={"description": "the file's name in the model folder (a single-file upload)"},
    )
    license = ma.fields.String(load_default=None, validate=validate.Length(1, 64))


class HuggingFaceImportSchema(ma.Schema):
    source_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    repository = ma.fields.String(
        required=True,
        validate=validate.Regexp(r"^[\w.-]+/[\w.-]+$", error="'owner/name'"),
        metadata={"example": "Qwen/Qwen2.5-0.5B-Instruct"},
    )
    revision = ma.fields.String(load_default="main", validate=validate.Length(1, 255))


class S3ImportSchema(ma.Schema):
    source_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    bucket = ma.fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", error="an S3 bucket name"),
    )
    prefix = ma.fields.String(load_default="", validate=validate.Length(max=1024))


class RegistryImportSchema(ma.Schema):
    registry_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    repository = ma.fields.String(required=True, validate=validate.Length(1, 255))
    reference = ma.fields.String(required=True, validate=validate.Length(1, 128))


class ModelImportSchema(ma.Schema):
    """Exactly one source: a path on the Spectr node, a Hub mirror, a bucket, or a registry."""

    name = ma.fields.String(required=True)
    path = ma.fields.String(
        validate=validate.Length(1, 1024),
        metadata={"description": "absolute path of a file or folder on the Spectr node (admin)"},
    )
    huggingface = ma.fields.Nested(HuggingFaceImportSchema)
    s3 = ma.fields.Nested(S3ImportSchema)
    registry = ma.fields.Nested(RegistryImportSchema)
    overrides = ma.fields.Nested(ModelOverridesSchema, load_default=dict)

    @ma.validates_schema
    def _one_source(self, data: dict, **_: object) -> None:
        given = [key for key in SOURCE_FIELDS if data.get(key) is not None]
        if len(given) != 1:
            raise ma.ValidationError(
                f"give exactly one of {', '.join(SOURCE_FIELDS)} (got {len(given)})", "_schema"
            )


SOURCE_FIELDS = ("path", "huggingface", "s3", "registry")


class ModelSourceSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=validate.Length(1, 120))
    kind = ma.fields.String(required=True, validate=validate.OneOf(SOURCE_KINDS))
    url = ma.fields.Url(
        required=True, schemes={"http", "https"}, require_tld=False,
        metadata={"example": "https://hf-mirror.internal"},
    )  # fmt: skip
    token = ma.fields.String(load_only=True, load_default=None, validate=validate.Length(max=2048))
    access_key = ma.fields.String(
        load_only=True, load_default=None, validate=validate.Length(max=1024)
    )
    secret_key = ma.fields.String(
        load_only=True, load_default=None, validate=validate.Length(max=2048)
    )
    region = ma.fields.String(load_default=None, validate=validate.Length(max=64))
    ca_pem = ma.fields.String(load_default=None, validate=validate.Length(max=65536))
    has_credentials = ma.fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class ModelFileSchema(ma.Schema):
    path = ma.fields.String()
    digest = ma.fields.String()
    size_bytes = ma.fields.Integer()


class ModelRevisionSchema(ma.Schema):
    number = ma.fields.Integer()
    repository = ma.fields.String()
    tag = ma.fields.String()
    manifest_digest = ma.fields.String()
    size_bytes = ma.fields.Integer()
    format = ma.fields.String()
    facts = ma.fields.Dict()
    source = ma.fields.Dict()
    operation_id = ma.fields.String(allow_none=True)
    created_by = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()
    files = ma.fields.List(ma.fields.Nested(ModelFileSchema))


class HostModelSchema(ma.Schema):
    host_id = ma.fields.Integer()
    host = ma.fields.Function(lambda row: row.host.name)
    model = ma.fields.Function(lambda row: row.revision.model.name)
    revision = ma.fields.Function(lambda row: row.revision.number)
    digest = ma.fields.Function(lambda row: row.revision.manifest_digest)
    state = ma.fields.String()
    path = ma.fields.String(allow_none=True)
    size_bytes = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    pulled_at = UtcDateTime(allow_none=True)


class DistributeSchema(ma.Schema):
    host_ids = ma.fields.List(
        ma.fields.Integer(validate=validate.Range(1, MAX_DATABASE_ID)),
        required=True,
        validate=validate.Length(1, 1000),
    )
    revision = ma.fields.Integer(load_default=None, validate=validate.Range(1, 1_000_000))


class RemoveFromHostSchema(ma.Schema):
    revision = ma.fields.Integer(load_default=None, validate=validate.Range(1, 1_000_000))
