"""Schemas of routes, gateway models, gateway keys and usage."""

from __future__ import annotations

import marshmallow as ma

from portal.core.fields import PartialLoad, UtcDateTime
from portal.projects.schemas import project_field

NAME = ma.validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$", error="Letters, digits and ._:/@- only."
)
HOST = ma.validate.Regexp(r"^(\*|[A-Za-z0-9.-]{1,253})$", error="A host name or '*'.")
UPSTREAM = ma.validate.Regexp(
    r"^https?://[^/\s]+/?$", error="An http(s)://host:port URL without a path."
)
STRATEGIES = ma.validate.OneOf(["round_robin", "least_connections"])


class RouteSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=NAME)
    hosts = ma.fields.List(ma.fields.String(validate=HOST), load_default=["*"])
    path_prefix = ma.fields.String(
        load_default="/", validate=ma.validate.Regexp(r"^/", error="Must start with '/'.")
    )
    strip_prefix = ma.fields.Boolean(load_default=False)
    upstreams = ma.fields.List(
        ma.fields.String(validate=UPSTREAM), required=True, validate=ma.validate.Length(min=1)
    )
    strategy = ma.fields.String(load_default="round_robin", validate=STRATEGIES)
    health_path = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Regexp(r"^/")
    )
    timeout_s = ma.fields.Float(load_default=60.0, validate=ma.validate.Range(0.1, 3600))
    retries = ma.fields.Integer(load_default=1, validate=ma.validate.Range(0, 10))
    project = project_field()
    project_id = ma.fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class RouteUpdateSchema(PartialLoad, RouteSchema):
    """Every field optional: a PATCH changes only what it names. A route stays in its project."""

    class Meta:
        exclude = ("project",)


class GatewayModelSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=NAME)
    aliases = ma.fields.List(ma.fields.String(validate=NAME), load_default=list)
    replicas = ma.fields.List(ma.fields.String(validate=UPSTREAM), required=True)
    upstream_model = ma.fields.String(load_default=None, allow_none=True)
    strategy = ma.fields.String(load_default="least_connections", validate=STRATEGIES)
    fallbacks = ma.fields.List(
        ma.fields.String(validate=NAME),
        load_default=list,
        metadata={
            "description": "Other gateway models (names, not aliases) tried in order when every "
            "replica of this one fails (connect error, 5xx, timeout) or answers 429; "
            "not itself, no cycles"
        },
    )
    application_id = ma.fields.Integer(dump_only=True, allow_none=True)


class GatewayKeySchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    public_id = ma.fields.String(dump_only=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 120))
    owner = ma.fields.Function(lambda key: key.user.username if key.user else None, dump_only=True)
    prefix = ma.fields.String(dump_only=True)
    models = ma.fields.List(ma.fields.String(), load_default=["*"])
    rpm = ma.fields.Integer(load_default=None, allow_none=True, validate=ma.validate.Range(min=1))
    tpm = ma.fields.Integer(load_default=None, allow_none=True, validate=ma.validate.Range(min=1))
    budget_tokens = ma.fields.Integer(
        load_default=None, allow_none=True, validate=ma.validate.Range(min=1)
    )
    budget_period = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.OneOf(["hour", "day", "week", "month"]),
    )
    expires_in_days = ma.fields.Integer(
        load_only=True, load_default=None, allow_none=True, validate=ma.validate.Range(1, 3650)
    )
    project = project_field()
    project_id = ma.fields.Integer(dump_only=True)
    expires_at = UtcDateTime(dump_only=True, allow_none=True)
    revoked_at = UtcDateTime(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)

    @ma.validates_schema
    def _budget_needs_both(self, data: dict, **_: object) -> None:
        if bool(data.get("budget_tokens")) != bool(data.get("budget_period")):
            raise ma.ValidationError(
                "Give budget_tokens and budget_period together.", "budget_period"
            )


class GatewayKeyCreatedSchema(GatewayKeySchema):
    key = ma.fields.String(dump_only=True, metadata={"description": "The secret; shown once"})


class UsageQuerySchema(ma.Schema):
    group_by = ma.fields.String(
        load_default="day", validate=ma.validate.OneOf(["day", "key", "model", "user"])
    )
    since = UtcDateTime()
    until = UtcDateTime()


class UsageAggregateSchema(ma.Schema):
    group = ma.fields.String()
    requests = ma.fields.Integer()
    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    errors = ma.fields.Integer()
    avg_latency_ms = ma.fields.Float()
