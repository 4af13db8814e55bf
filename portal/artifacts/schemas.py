"""Request and response shapes of the model artifacts API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from portal.catalog.schemas import ModelSchema
from portal.core.converters import MAX_DATABASE_ID
from portal.core.fields import UtcDateTime

# Catalog fields a person may set at import time; they win over what the files say.
OVERRIDABLE = ("family", "parameters_billions", "quantization", "format", "context_length",
               "license", "num_layers", "num_kv_heads", "head_dim", "description")  # fmt: skip


class ModelOverridesSchema(ModelSchema):
    class Meta:
        fields = OVERRIDABLE

    def __init__(self, **kwargs: object) -> None:
        super().__init__(partial=True, **kwargs)


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


class FolderImportSchema(ma.Schema):
    name = ma.fields.String(required=True)
    path = ma.fields.String(
        required=True,
        validate=validate.Length(1, 1024),
        metadata={"description": "absolute path of a folder on the Spectr node"},
    )
    overrides = ma.fields.Nested(ModelOverridesSchema, load_default=dict)


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
