"""Schemas of projects, their members and their quotas."""

from __future__ import annotations

from typing import Any

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
    gpus_per_model = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Nested(QuotaUseSchema),
        metadata={"description": "GPU model -> GPUs of that model held, and its limit"},
    )
    gpu_memory_mib = ma.fields.Nested(QuotaUseSchema)
    gateway_rpm = ma.fields.Nested(
        QuotaUseSchema, metadata={"description": "Gateway requests this UTC minute"}
    )
    gateway_tokens_per_day = ma.fields.Nested(
        QuotaUseSchema, metadata={"description": "Gateway tokens today (UTC)"}
    )
    gateway_tokens_per_month = ma.fields.Nested(
        QuotaUseSchema, metadata={"description": "Gateway tokens this month (UTC)"}
    )


# Quota fields of a project: description, and the largest value its column holds. None is no
# limit; 0 allows nothing.
LIMITS = {
    "gpu_limit": ("GPUs the project's applications may hold", 1_000_000),
    "application_limit": ("Applications the project may have", 1_000_000),
    "gpu_memory_limit_mib": ("MiB of memory of the GPUs its applications hold", 2_000_000_000),
    "gateway_rpm_limit": ("Gateway requests per minute, all its keys together", 1_000_000_000),
    "gateway_tokens_per_day_limit": ("Gateway tokens per UTC day, all its keys together", 10**15),
    "gateway_tokens_per_month_limit": ("Gateway tokens per UTC month, all its keys together",
                                       10**15),
}  # fmt: skip
QUOTA_FIELDS = frozenset({*LIMITS, "gpu_model_limits"})


def _limit(name: str, **extra: Any) -> ma.fields.Integer:
    description, maximum = LIMITS[name]
    return ma.fields.Integer(
        allow_none=True,
        validate=ma.validate.Range(0, maximum),
        metadata={"description": f"{description}; null: no limit"},
        **extra,
    )


def _model_limits(**extra: Any) -> ma.fields.Dict:
    return ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Length(1, 128)),
        values=ma.fields.Integer(required=True, validate=ma.validate.Range(0, 1_000_000)),
        allow_none=True,
        metadata={
            "description": "GPU model, as hosts' GPU facts name it (e.g. 'NVIDIA H100 80GB "
            "HBM3') -> GPUs of that model the project's applications may hold; a model not "
            "named is limited by gpu_limit alone; null: no per-model limit"
        },
        **extra,
    )


class ProjectSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=PROJECT_NAME)
    description = ma.fields.String(load_default="", validate=ma.validate.Length(0, 2000))
    gpu_limit = _limit("gpu_limit", load_default=None)
    application_limit = _limit("application_limit", load_default=None)
    gpu_model_limits = _model_limits(load_default=None)
    gpu_memory_limit_mib = _limit("gpu_memory_limit_mib", load_default=None)
    gateway_rpm_limit = _limit("gateway_rpm_limit", load_default=None)
    gateway_tokens_per_day_limit = _limit("gateway_tokens_per_day_limit", load_default=None)
    gateway_tokens_per_month_limit = _limit("gateway_tokens_per_month_limit", load_default=None)
    created_at = UtcDateTime(dump_only=True)
    role = ma.fields.String(
        dump_only=True, metadata={"description": "Your role in the project"}, allow_none=True
    )
    usage = ma.fields.Nested(ProjectUsageSchema, dump_only=True)


class ProjectUpdateSchema(ma.Schema):
    description = ma.fields.String(validate=ma.validate.Length(0, 2000))
    gpu_limit = _limit("gpu_limit")
    application_limit = _limit("application_limit")
    gpu_model_limits = _model_limits()
    gpu_memory_limit_mib = _limit("gpu_memory_limit_mib")
    gateway_rpm_limit = _limit("gateway_rpm_limit")
    gateway_tokens_per_day_limit = _limit("gateway_tokens_per_day_limit")
    gateway_tokens_per_month_limit = _limit("gateway_tokens_per_month_limit")


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
