"""Response and request shapes of the applications API (inputs: see spec.py)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from portal.apps.models import APP_KINDS
from portal.apps.spec import NAME_PATTERN, PULL_POLICIES
from portal.core.converters import MAX_DATABASE_ID
from portal.core.fields import UtcDateTime
from portal.hosts.log_follow import TailField, validate_since


class RevisionSchema(ma.Schema):
    number = ma.fields.Integer()
    spec = ma.fields.Method("public_spec")
    secret_env_keys = ma.fields.Method("secret_keys")
    gpu_indexes = ma.fields.List(ma.fields.Integer())
    vram_reservation_mib = ma.fields.Integer(allow_none=True)
    note = ma.fields.String()
    created_by = ma.fields.String()
    created_at = UtcDateTime()

    def public_spec(self, revision: object) -> dict:
        return {k: v for k, v in revision.spec.items() if k != "secret_env_keys"}  # type: ignore[attr-defined]

    def secret_keys(self, revision: object) -> list[str]:
        return list(revision.spec.get("secret_env_keys", []))  # type: ignore[attr-defined]


class AppSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    host_id = ma.fields.Integer(validate=validate.Range(1, MAX_DATABASE_ID))
    project_id = ma.fields.Integer(dump_only=True)
    kind = ma.fields.String()
    latest_revision = ma.fields.Integer()
    deployed_revision = ma.fields.Integer(allow_none=True)
    status = ma.fields.String()
    status_detail = ma.fields.String(allow_none=True)
    status_checked_at = UtcDateTime(allow_none=True)
    adopted = ma.fields.Boolean()
    model_id = ma.fields.Integer(allow_none=True)
    runtime_id = ma.fields.Integer(allow_none=True)
    last_operation_id = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()


class AppDetailSchema(AppSchema):
    revisions = ma.fields.List(ma.fields.Nested(RevisionSchema))


class AppQuerySchema(ma.Schema):
    host_id = ma.fields.Integer(load_default=None, validate=validate.Range(1, MAX_DATABASE_ID))


class RefreshQuerySchema(ma.Schema):
    refresh = ma.fields.Boolean(load_default=False)


class DeployBodySchema(ma.Schema):
    revision = ma.fields.Integer(load_default=None, validate=validate.Range(1, 1_000_000))


class RollbackBodySchema(ma.Schema):
    revision = ma.fields.Integer(required=True, validate=validate.Range(1, 1_000_000))


class DiffQuerySchema(ma.Schema):
    from_revision = ma.fields.Integer(
        required=True, data_key="from", validate=validate.Range(1, 1_000_000)
    )
    to_revision = ma.fields.Integer(
        required=True, data_key="to", validate=validate.Range(1, 1_000_000)
    )


class DiffSchema(ma.Schema):
    from_revision = ma.fields.Integer()
    to_revision = ma.fields.Integer()
    changed_keys = ma.fields.List(ma.fields.String())
    diff = ma.fields.String()


class LogsQuerySchema(ma.Schema):
    tail = TailField(load_default=200)
    follow = ma.fields.Boolean(load_default=False)
    download = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "answer a .log file (text/plain attachment), not JSON"},
    )
    timestamps = ma.fields.Boolean(
        load_default=False, metadata={"description": "with download=1: each line's time first"}
    )
    container = ma.fields.String(load_default=None)
    since = ma.fields.String(
        load_default=None,
        validate=validate_since,
        metadata={"description": "with follow=1: after this line's timestamp (its event id)"},
    )


class LogFrameSchema(ma.Schema):
    stream = ma.fields.String(metadata={"description": "stdout or stderr"})
    data = ma.fields.String()


class AppLogsSchema(ma.Schema):
    container = ma.fields.String()
    lines = ma.fields.List(ma.fields.Nested(LogFrameSchema))


class ExecBodySchema(ma.Schema):
    argv = ma.fields.List(ma.fields.String(), load_default=None)
    command = ma.fields.String(
        load_default=None, metadata={"description": "split like a shell would; no shell runs"}
    )
    container = ma.fields.String(load_default=None)
    timeout = ma.fields.Float(load_default=30.0, validate=validate.Range(0.1, 300))

    @ma.validates_schema
    def _one_command(self, data: dict, **_: object) -> None:
        if not data.get("argv") and not data.get("command"):
            raise ma.ValidationError("give argv or command", "argv")


class ExecResultSchema(ma.Schema):
    container = ma.fields.String()
    exit_code = ma.fields.Integer(allow_none=True)
    stdout = ma.fields.String()
    stderr = ma.fields.String()
    timed_out = ma.fields.Boolean()


class AdoptBodySchema(ma.Schema):
    host_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    kind = ma.fields.String(load_default="container", validate=validate.OneOf(APP_KINDS))
    name = ma.fields.String(required=True, validate=validate.Length(1, 63))


class AdoptableSchema(ma.Schema):
    kind = ma.fields.String()
    name = ma.fields.String()
    image = ma.fields.String(allow_none=True)
    services = ma.fields.List(ma.fields.String())
    state = ma.fields.String(allow_none=True)


class DeployModelSchema(ma.Schema):
    name = ma.fields.String(
        required=True,
        validate=validate.Regexp(NAME_PATTERN, error="lowercase letters, digits, '-' and '_'"),
    )
    runtime_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    host_id = ma.fields.Integer(required=True, validate=validate.Range(1, MAX_DATABASE_ID))
    gpus = ma.fields.List(ma.fields.Integer(validate=validate.Range(0, 63)), load_default=list)
    host_port = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 65535)
    )
    context_length = ma.fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 10_000_000)
    )
    image = ma.fields.String(load_default=None, allow_none=True)
    command = ma.fields.List(ma.fields.String(), load_default=None, allow_none=True)
    env = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)
    secret_env = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.String(), load_default=dict
    )
    pull = ma.fields.String(load_default="missing", validate=validate.OneOf(PULL_POLICIES))
    deploy = ma.fields.Boolean(load_default=True)
    model_revision = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(1, 1_000_000),
        metadata={"description": "an imported model's revision (default: the latest)"},
    )


class DuplicateBodySchema(ma.Schema):
    name = ma.fields.String(
        required=True,
        validate=validate.Regexp(NAME_PATTERN, error="lowercase letters, digits, '-' and '_'"),
    )
    host_id = ma.fields.Integer(
        load_default=None,
        validate=validate.Range(1, MAX_DATABASE_ID),
        metadata={"description": "the host to put the copy on (default: the source's host)"},
    )
    deploy = ma.fields.Boolean(load_default=False)


class ComposeCheckBodySchema(ma.Schema):
    compose = ma.fields.String(required=True, metadata={"description": "compose YAML text"})


class ComposeProblemSchema(ma.Schema):
    line = ma.fields.Integer(metadata={"description": "1-based line of the text"})
    column = ma.fields.Integer()
    path = ma.fields.String(metadata={"description": "where in the document, e.g. services/web"})
    message = ma.fields.String()


class ComposeServiceSchema(ma.Schema):
    name = ma.fields.String()
    image = ma.fields.String()


class ComposeCheckSchema(ma.Schema):
    valid = ma.fields.Boolean()
    problems = ma.fields.List(ma.fields.Nested(ComposeProblemSchema))
    services = ma.fields.List(ma.fields.Nested(ComposeServiceSchema))
