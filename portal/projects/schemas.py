"""Schemas of projects, their members and their quotas."""

from __future__ import annotations

import marshmallow as ma

from portal.core.fields import UtcDateTime
from portal.core.security import ROLES

PROJECT_NAME = ma.validate.Regexp(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    error="Use lower-case letters, digits and '-' (up to 63), starting with a letter or digit.",
)


def project_field() -> ma.fields.String:
    """The `project` a new resource goes to, by name."""
    return ma.fields.String(
        load_default=None,
        validate=PROJECT_NAME,
        metadata={"description": "Project name; default: your only project, else 'default'"},
    )


class QuotaUseSchema(ma.Schema):
    used = ma.fields.Integer()
    limit = ma.fields.Integer(allow_none=True)


class ProjectUsageSchema(ma.Schema):
    gpus = ma.fields.Nested(QuotaUseSchema)
    applications = ma.fields.Nested(QuotaUseSchema)


class ProjectSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=PROJECT_NAME)
    description = ma.fields.String(load_default="", validate=ma.validate.Length(0, 2000))
    gpu_limit = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Range(0, 1_000_000),
        metadata={"description": "GPUs the project's applications may hold; null: no limit"},
    )
    application_limit = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Range(0, 1_000_000),
        metadata={"description": "Applications the project may have; null: no limit"},
    )
    created_at = UtcDateTime(dump_only=True)
    role = ma.fields.String(
        dump_only=True, metadata={"description": "Your role in the project"}, allow_none=True
    )
    usage = ma.fields.Nested(ProjectUsageSchema, dump_only=True)


class ProjectUpdateSchema(ma.Schema):
    description = ma.fields.String(validate=ma.validate.Length(0, 2000))
    gpu_limit = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(0, 1_000_000))
    application_limit = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(0, 1_000_000))


class MemberSchema(ma.Schema):
    user_id = ma.fields.Integer(dump_only=True)
    username = ma.fields.Function(lambda member: member.user.username, dump_only=True)
    role = ma.fields.String()
    created_at = UtcDateTime(dump_only=True)


class MemberAddSchema(ma.Schema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(1, 80))
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class MemberRoleSchema(ma.Schema):
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class HostShareSchema(ma.Schema):
    project = ma.fields.Function(lambda share: share.project.name, dump_only=True)
    project_id = ma.fields.Integer(dump_only=True)
    gpu_limit = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime(dump_only=True)


class HostShareAddSchema(ma.Schema):
    project = ma.fields.String(
        required=True,
        validate=PROJECT_NAME,
        metadata={"description": "The project the host is shared with (by name)"},
    )
    gpu_limit = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Range(0, 1_000_000),
        metadata={"description": "GPUs of the host its applications may hold; null: no limit"},
    )


class HostShareChangeSchema(ma.Schema):
    gpu_limit = ma.fields.Integer(
        required=True, allow_none=True, validate=ma.validate.Range(0, 1_000_000)
    )


class MoveSchema(ma.Schema):
    project = ma.fields.String(
        required=True,
        validate=PROJECT_NAME,
        metadata={"description": "The project it moves to (you are admin there too)"},
    )
