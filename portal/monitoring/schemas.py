"""Schemas of scrape targets, events and webhooks."""

from __future__ import annotations

import marshmallow as ma

from portal.core.fields import UtcDateTime
from portal.core.outbound import validate_outbound_url
from portal.monitoring.discovery import ROLES
from portal.monitoring.models import EVENT_KINDS, OPEN, RESOLVED

HTTP_URL = ma.validate.URL(schemes={"http", "https"}, require_tld=False)


class TargetQuerySchema(ma.Schema):
    role = ma.fields.String(load_default=None, validate=ma.validate.OneOf(ROLES))


class TargetGroupSchema(ma.Schema):
    targets = ma.fields.List(ma.fields.String())
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


class EventQuerySchema(ma.Schema):
    state = ma.fields.String(load_default=None, validate=ma.validate.OneOf([OPEN, RESOLVED]))
    kind = ma.fields.String(load_default=None, validate=ma.validate.OneOf(EVENT_KINDS))
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(1, 1000))


class EventSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    severity = ma.fields.String()
    state = ma.fields.String()
    subject = ma.fields.String()
    project_id = ma.fields.Integer(allow_none=True)
    message = ma.fields.String()
    details = ma.fields.Dict()
    opened_at = UtcDateTime()
    resolved_at = UtcDateTime(allow_none=True)


class WebhookSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(
        required=True,
        validate=ma.validate.Regexp(
            r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$", error="Letters, digits and ._- only."
        ),
    )
    url = ma.fields.String(
        required=True,
        validate=[HTTP_URL, ma.validate.Length(max=2048), validate_outbound_url],
    )
    event_kinds = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(EVENT_KINDS)), load_default=list
    )
    secret = ma.fields.String(
        load_only=True, load_default=None, validate=ma.validate.Length(min=16, max=256)
    )
    active = ma.fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class WebhookCreatedSchema(WebhookSchema):
    # The secret is in the creation answer only; it is stored encrypted and never shown again.
    signing_secret = ma.fields.String(dump_only=True)


class DeliverySchema(ma.Schema):
    id = ma.fields.Integer()
    event_id = ma.fields.Integer()
    event_count = ma.fields.Function(
        lambda delivery: len(delivery.event_ids or ()) or 1,
        metadata={"description": "Events this delivery announces (more than 1: grouped)"},
    )
    transition = ma.fields.String()
    state = ma.fields.String()
    attempts = ma.fields.Integer()
    last_outcome = ma.fields.String(allow_none=True)
    updated_at = UtcDateTime()
