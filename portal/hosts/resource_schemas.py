"""Schemas of a host's Docker resources in the API: containers, images, volumes, networks."""

from __future__ import annotations

import marshmallow as ma

from portal.core.fields import UtcDateTime
from portal.hosts.resources import CONTAINER_ACTIONS, CONTAINER_STATES, MANAGED_LABEL

REFERENCE = ma.validate.Length(1, 128)


def _label_filter(value: str) -> None:
    key = value.partition("=")[0]
    if not key.strip() or len(value) > 300:
        raise ma.ValidationError("Give KEY or KEY=VALUE (up to 300 characters).")


def label_mapping(filters: list[str]) -> dict[str, str | None]:
    """KEY / KEY=VALUE filters as the engine contract's label mapping."""
    mapping: dict[str, str | None] = {}
    for item in filters:
        key, has_value, value = item.partition("=")
        mapping[key.strip()] = value if has_value else None
    return mapping


class ContainerQuerySchema(ma.Schema):
    state = ma.fields.String(validate=ma.validate.OneOf(CONTAINER_STATES))
    q = ma.fields.String(
        validate=ma.validate.Length(1, 200),
        metadata={"description": "part of the name or image, any case"},
    )
    managed = ma.fields.Boolean(
        metadata={"description": f"true: only containers Spectr deployed ({MANAGED_LABEL})"}
    )


class PublishedPortSchema(ma.Schema):
    container_port = ma.fields.Integer()
    protocol = ma.fields.String()
    host_ip = ma.fields.String(allow_none=True)
    host_port = ma.fields.Integer(allow_none=True)
    url = ma.fields.String(
        allow_none=True, metadata={"description": "http:// address a browser can open, if any"}
    )


class MountSchema(ma.Schema):
    type = ma.fields.String()
    name = ma.fields.String(allow_none=True, metadata={"description": "the volume's name"})
    source = ma.fields.String(allow_none=True)
    destination = ma.fields.String()
    read_only = ma.fields.Boolean()


class NetworkAttachmentSchema(ma.Schema):
    name = ma.fields.String()
    network_id = ma.fields.String(allow_none=True)
    ip_address = ma.fields.String(allow_none=True)


class ContainerRowSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    image = ma.fields.String(allow_none=True)
    image_id = ma.fields.String(allow_none=True)
    state = ma.fields.String(allow_none=True)
    status = ma.fields.String(allow_none=True)
    created = ma.fields.String(allow_none=True)
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    managed = ma.fields.Boolean(metadata={"description": f"carries {MANAGED_LABEL}"})
    ports = ma.fields.List(ma.fields.Nested(PublishedPortSchema))
    mounts = ma.fields.List(ma.fields.Nested(MountSchema))
    networks = ma.fields.List(ma.fields.Nested(NetworkAttachmentSchema))


class EnvVarSchema(ma.Schema):
    name = ma.fields.String()
    value = ma.fields.String(allow_none=True, metadata={"description": "null when masked"})
    masked = ma.fields.Boolean()


class GpuRequestSchema(ma.Schema):
    count = ma.fields.Integer(metadata={"description": "-1: every GPU (unused with device_ids)"})
    device_ids = ma.fields.List(
        ma.fields.String(), allow_none=True, metadata={"description": "GPU indexes or UUIDs"}
    )
    driver = ma.fields.String()


class ContainerDetailSchema(ContainerRowSchema):
    command = ma.fields.List(ma.fields.String(), allow_none=True)
    entrypoint = ma.fields.List(ma.fields.String(), allow_none=True)
    command_line = ma.fields.String(
        metadata={"description": "entrypoint and command, quoted as a shell would need"}
    )
    env = ma.fields.List(ma.fields.Nested(EnvVarSchema))
    restart_policy = ma.fields.String(allow_none=True)
    gpus = ma.fields.Nested(
        GpuRequestSchema, allow_none=True, metadata={"description": "the GPUs it asks for"}
    )
    restart_count = ma.fields.Integer()
    health = ma.fields.String(allow_none=True)
    exit_code = ma.fields.Integer(allow_none=True)
    started_at = ma.fields.String(allow_none=True)
    finished_at = ma.fields.String(allow_none=True)
    tty = ma.fields.Boolean()
    application = ma.fields.Dict(
        allow_none=True, metadata={"description": "the Spectr application it belongs to"}
    )


class ContainerStatsSchema(ma.Schema):
    container = ma.fields.String()
    at = UtcDateTime()
    cpu_percent = ma.fields.Float()
    memory_usage_bytes = ma.fields.Integer(allow_none=True)
    memory_limit_bytes = ma.fields.Integer(allow_none=True)
    pids = ma.fields.Integer(allow_none=True)
    network_rx_bytes = ma.fields.Integer(
        allow_none=True, metadata={"description": "received since the container started"}
    )
    network_tx_bytes = ma.fields.Integer(allow_none=True)


class ContainerActionSchema(ma.Schema):
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(CONTAINER_ACTIONS))
    ids = ma.fields.List(
        ma.fields.String(validate=REFERENCE),
        required=True,
        validate=ma.validate.Length(1, 100),
        metadata={"description": "names or ids (an id prefix needs 12 characters or more)"},
    )
    force = ma.fields.Boolean(
        load_default=False, metadata={"description": "remove: kill running ones first"}
    )


class ContainerActionResultSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String(allow_none=True)
    ok = ma.fields.Boolean()
    error = ma.fields.String(allow_none=True)


class ImageRowSchema(ma.Schema):
    id = ma.fields.String()
    tags = ma.fields.List(ma.fields.String())
    digests = ma.fields.List(ma.fields.String())
    size = ma.fields.Integer(allow_none=True)
    created = ma.fields.String(allow_none=True)
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    dangling = ma.fields.Boolean()
    containers = ma.fields.List(ma.fields.String(), metadata={"description": "using it"})


class ImageRemoveQuerySchema(ma.Schema):
    force = ma.fields.Boolean(
        load_default=False, metadata={"description": "remove even while containers use it"}
    )


class VolumeRowSchema(ma.Schema):
    name = ma.fields.String()
    driver = ma.fields.String()
    mountpoint = ma.fields.String(allow_none=True)
    created = ma.fields.String(allow_none=True)
    scope = ma.fields.String(allow_none=True)
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    size = ma.fields.Integer(allow_none=True, metadata={"description": "bytes; null: unknown"})
    containers = ma.fields.List(ma.fields.String(), metadata={"description": "mounting it"})


class NetworkRowSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    driver = ma.fields.String()
    scope = ma.fields.String(allow_none=True)
    created = ma.fields.String(allow_none=True)
    internal = ma.fields.Boolean()
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    subnets = ma.fields.List(ma.fields.String())
    builtin = ma.fields.Boolean()
    containers = ma.fields.List(ma.fields.String(), metadata={"description": "attached"})


class PruneSchema(ma.Schema):
    confirm = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 120),
        metadata={"description": "the host's name: says which host's unused objects go"},
    )
    label = ma.fields.List(
        ma.fields.String(validate=_label_filter),
        load_default=list,
        validate=ma.validate.Length(0, 20),
        metadata={"description": "only objects with these labels (KEY or KEY=VALUE)"},
    )


class PruneResultSchema(ma.Schema):
    deleted = ma.fields.List(ma.fields.String())
    space_reclaimed = ma.fields.Integer()
    labels = ma.fields.Dict()
