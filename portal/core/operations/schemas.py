"""Marshmallow schemas of the operations API: the contract clients see."""

from __future__ import annotations

import marshmallow as ma
from flask import url_for

from portal.core.converters import MAX_DATABASE_ID
from portal.core.fields import UtcDateTime
from portal.core.operations.kinds import kind_names
from portal.core.operations.models import STATES
from portal.core.outbound import validate_outbound_url


class OperationSchema(ma.Schema):
    id = ma.fields.String(dump_only=True)
    kind = ma.fields.String()
    target = ma.fields.String(allow_none=True)
    project_id = ma.fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "None: the fleet's own work"}
    )
    state = ma.fields.String()
    attempts = ma.fields.Integer()
    max_attempts = ma.fields.Integer()
    progress = ma.fields.Float()
    progress_message = ma.fields.String(allow_none=True)
    params = ma.fields.Dict()
    result = ma.fields.Dict(allow_none=True)
    error = ma.fields.String(allow_none=True)
    requested_by = ma.fields.String(attribute="requester_name", allow_none=True)
    idempotency_key = ma.fields.String(allow_none=True)
    callback_url = ma.fields.String(allow_none=True)
    callback_state = ma.fields.String(
        allow_none=True,
        metadata={"description": "pending, retrying: <why>, delivered or failed: <why>"},
    )
    callback_attempts = ma.fields.Integer(metadata={"description": "Deliveries tried so far."})
    cancel_requested = ma.fields.Boolean()
    request_id = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()
    queued_at = UtcDateTime(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    links = ma.fields.Method("_links")

    def _links(self, operation: object) -> dict[str, str]:
        op_id = operation.id  # type: ignore[attr-defined]
        try:
            return {
                "self": url_for("operations.OperationItem", operation_id=op_id),
                "log": url_for("operations.OperationLog", operation_id=op_id),
                "cancel": url_for("operations.OperationCancel", operation_id=op_id),
            }
        except RuntimeError:  # outside a request (worker callbacks): relative paths
            base = f"/api/v1/operations/{op_id}"
            return {"self": base, "log": f"{base}/log", "cancel": f"{base}/cancel"}


class OperationCreateSchema(ma.Schema):
    kind = ma.fields.String(
        required=True,
        metadata={"description": "A directly creatable kind (for example noop or sleep)"},
    )
    params = ma.fields.Dict(load_default=dict)
    target = ma.fields.String(load_default=None, validate=ma.validate.Length(max=255))
    max_attempts = ma.fields.Integer(load_default=None, validate=ma.validate.Range(1, 20))
    callback_url = ma.fields.Url(
        load_default=None,
        schemes={"http", "https"},
        require_tld=False,
        validate=[ma.validate.Length(max=2048), validate_outbound_url],
    )

    @ma.validates("kind")
    def _known_kind(self, value: str, **_: object) -> None:
        if value not in kind_names(creatable_only=True):
            allowed = ", ".join(kind_names(creatable_only=True))
            raise ma.ValidationError(
                f"Unknown or not directly creatable kind; use one of: {allowed}."
            )


class OperationQuerySchema(ma.Schema):
    state = ma.fields.String(validate=ma.validate.OneOf(STATES))
    kind = ma.fields.String()
    target = ma.fields.String()
    since = UtcDateTime()


class LogQuerySchema(ma.Schema):
    after = ma.fields.Integer(load_default=0, validate=ma.validate.Range(0, MAX_DATABASE_ID))
    follow = ma.fields.Boolean(load_default=False)
    limit = ma.fields.Integer(load_default=1000, validate=ma.validate.Range(1, 10000))


class LogLineSchema(ma.Schema):
    id = ma.fields.Integer()
    at = UtcDateTime()
    level = ma.fields.String()
    message = ma.fields.String()


class OperationLogSchema(ma.Schema):
    operation_id = ma.fields.String()
    state = ma.fields.String()
    lines = ma.fields.List(ma.fields.Nested(LogLineSchema))
