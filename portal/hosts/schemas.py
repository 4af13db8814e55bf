"""Marshmallow schemas of the hosts API. Keys, passwords and agent tokens are load-only."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from cryptography import x509

from portal.core.addresses import validate_host_address
from portal.core.fields import UtcDateTime
from portal.core.pki import certificate_summary
from portal.hosts.facts import summary
from portal.hosts.models import HOST_STATUSES
from portal.projects.schemas import project_field
from portal.projects.sharing import seen_through_share

ADDRESS = validate_host_address
NAME = ma.validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$",
    error="Use letters, digits, '.', '_' and '-' (up to 120), starting with a letter or digit.",
)
USER = ma.validate.Regexp(r"^[a-z_][a-z0-9_-]{0,31}$", error="Not a valid Unix user name.")
BECOME_METHODS = ("sudo", "su", "doas")
PORT = ma.validate.Range(1, 65535)


def _private_key(value: str) -> None:
    text = value.strip()
    if not (text.startswith("-----BEGIN") and "PRIVATE KEY-----" in text):
        raise ma.ValidationError("Paste the private key in PEM/OpenSSH form (-----BEGIN ...).")


def _labels(value: dict) -> None:
    for key, item in value.items():
        if not isinstance(item, str) or not key or len(key) > 63 or len(item) > 255:
            raise ma.ValidationError("Labels map keys (1-63 chars) to string values.")


class HostWriteSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=NAME)
    address = ma.fields.String(required=True, validate=ADDRESS)
    ssh_port = ma.fields.Integer(validate=PORT)
    ssh_user = ma.fields.String(validate=USER)
    ssh_private_key = ma.fields.String(load_only=True, validate=_private_key)
    ssh_password = ma.fields.String(load_only=True, validate=ma.validate.Length(1, 512))
    become_method = ma.fields.String(validate=ma.validate.OneOf(BECOME_METHODS))
    labels = ma.fields.Dict(keys=ma.fields.String(), validate=_labels)
    agent_port = ma.fields.Integer(validate=PORT)
    project = project_field()


class HostPatchSchema(HostWriteSchema):
    """Every field optional: use it as HostPatchSchema(partial=True). A host stays in its
    project."""

    class Meta:
        exclude = ("project",)


class GpuSchema(ma.Schema):
    index = ma.fields.Integer()
    uuid = ma.fields.String(allow_none=True)
    model = ma.fields.String()
    memory_total_mib = ma.fields.Integer()
    memory_used_mib = ma.fields.Integer()
    driver_version = ma.fields.String(allow_none=True)
    cuda_version = ma.fields.String(allow_none=True)


class StatusChangeSchema(ma.Schema):
    at = UtcDateTime()
    from_status = ma.fields.String()
    to_status = ma.fields.String()
    reason = ma.fields.String(allow_none=True)


class ContainerSchema(ma.Schema):
    container_id = ma.fields.String()
    name = ma.fields.String()
    image = ma.fields.String()
    state = ma.fields.String()
    health = ma.fields.String(allow_none=True)
    exit_code = ma.fields.Integer(allow_none=True)
    restart_count = ma.fields.Integer()
    labels = ma.fields.Dict()
    updated_at = UtcDateTime()


class _OwnersContainers(ma.fields.List):
    """A host's containers, shown to its own project only: a project that sees the host
    through a share sees its applications, not the owner's containers."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if seen_through_share(getattr(obj, "project_id", None)):
            return []
        return super()._serialize(value, attr, obj, **kwargs)


class HostSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    project_id = ma.fields.Integer()
    shared = ma.fields.Function(
        lambda host: seen_through_share(getattr(host, "project_id", None)),
        metadata={"description": "You see this host through a share of its project's"},
    )
    address = ma.fields.String()
    ssh_port = ma.fields.Integer()
    ssh_user = ma.fields.String()
    auth_method = ma.fields.String()
    become_method = ma.fields.String()
    labels = ma.fields.Dict()
    is_local = ma.fields.Boolean()
    status = ma.fields.String()
    status_reason = ma.fields.String(allow_none=True)
    status_changed_at = UtcDateTime()
    host_key_fingerprint = ma.fields.String(allow_none=True)
    agent_url = ma.fields.String(allow_none=True)
    agent_port = ma.fields.Integer()
    agent_version = ma.fields.String(allow_none=True)
    last_seen_at = UtcDateTime(allow_none=True)
    bootstrapped_at = UtcDateTime(allow_none=True)
    last_operation_id = ma.fields.String(allow_none=True)
    summary = ma.fields.Function(lambda host: summary(host.facts or {}))
    gpus = ma.fields.List(ma.fields.Nested(GpuSchema))
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class HostDetailSchema(HostSchema):
    facts = ma.fields.Dict()
    status_changes = ma.fields.Method("_history")
    containers = _OwnersContainers(
        ma.fields.Nested(ContainerSchema),
        metadata={"description": "Empty for a host seen through a share"},
    )
    agent_certificate = ma.fields.Method(
        "_agent_certificate",
        metadata={"description": "serial, sha256 and expiry of the agent's server certificate"},
    )

    def _history(self, host: object) -> list:
        from portal.hosts.service import status_history

        return StatusChangeSchema(many=True).dump(status_history(host.id))  # type: ignore[attr-defined]

    def _agent_certificate(self, host: object) -> dict[str, str] | None:
        pem = getattr(host, "agent_certificate", None)  # public; its key is never shown
        return certificate_summary(x509.load_pem_x509_certificate(pem.encode())) if pem else None


class HostQuerySchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(HOST_STATUSES))
    label = ma.fields.String(
        validate=ma.validate.Length(1, 300), metadata={"description": "KEY or KEY=VALUE"}
    )
    gpu_model = ma.fields.String(
        validate=ma.validate.Length(1, 128), metadata={"description": "substring, any case"}
    )


class BootstrapManySchema(ma.Schema):
    host_ids = ma.fields.List(
        ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1)),
        required=True,
        validate=ma.validate.Length(1, 1000),
    )
    forks = ma.fields.Integer(load_default=10, validate=ma.validate.Range(1, 50))


class BootstrapOneSchema(ma.Schema):
    forks = ma.fields.Integer(load_default=1, validate=ma.validate.Range(1, 50))


class RotateCredentialsSchema(ma.Schema):
    host_ids = ma.fields.List(
        ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1)),
        validate=ma.validate.Length(1, 1000),
        metadata={"description": "Hosts to rotate; every bootstrapped host when left out"},
    )
    forks = ma.fields.Integer(load_default=10, validate=ma.validate.Range(1, 50))
    portal_certificate = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "Also replace the portal's client certificate first"},
    )


class RotateOneSchema(ma.Schema):
    portal_certificate = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Also replace the portal's client certificate first"},
    )


class DeleteQuerySchema(ma.Schema):
    cleanup = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Stop Spectr's containers and remove the agent first"},
    )


class ImportSchema(ma.Schema):
    content = ma.fields.String(required=True, validate=ma.validate.Length(1, 2_000_000))
    format = ma.fields.String(load_default=None, validate=ma.validate.OneOf(("ini", "yaml", "csv")))
    ssh_private_key = ma.fields.String(load_only=True, validate=_private_key)
    ssh_password = ma.fields.String(load_only=True, validate=ma.validate.Length(1, 512))
    ssh_user = ma.fields.String(validate=USER)
    become_method = ma.fields.String(validate=ma.validate.OneOf(BECOME_METHODS))
    labels = ma.fields.Dict(keys=ma.fields.String(), validate=_labels, load_default=dict)
    project = project_field()


class GpuSamplesQuerySchema(ma.Schema):
    minutes = ma.fields.Integer(
        load_default=60,
        validate=ma.validate.Range(1, 7 * 24 * 60),
        metadata={
            "description": "how far back from now (samples are kept SPECTR_GPU_HISTORY_HOURS)"
        },
    )


class GpuSampleSchema(ma.Schema):
    at = UtcDateTime()
    utilization_percent = ma.fields.Float(allow_none=True)
    memory_used_mib = ma.fields.Integer(allow_none=True)
    memory_total_mib = ma.fields.Integer(allow_none=True)
    temperature_celsius = ma.fields.Float(allow_none=True)
    power_watts = ma.fields.Float(allow_none=True)


class GpuSeriesSchema(ma.Schema):
    index = ma.fields.Integer()
    samples = ma.fields.List(ma.fields.Nested(GpuSampleSchema))
