"""Schemas of the settings API."""

from __future__ import annotations

import marshmallow as ma

from portal.core.fields import UtcDateTime


class SettingSchema(ma.Schema):
    name = ma.fields.String()
    group = ma.fields.String()
    type = ma.fields.String()
    description = ma.fields.String()
    secret = ma.fields.Boolean()
    value = ma.fields.Raw(allow_none=True)
    default = ma.fields.Raw(allow_none=True)
    is_set = ma.fields.Boolean(metadata={"description": "For secrets: whether a value is stored"})
    updated_at = UtcDateTime(allow_none=True)
    updated_by = ma.fields.String(allow_none=True)


class SettingsPatchSchema(ma.Schema):
    """A mapping of setting name to new value; validated by the settings registry."""

    class Meta:
        unknown = ma.INCLUDE
