"""Build the contract's value types from the agent's JSON and from Docker's documents."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from portal.engines.docker_shapes import gpu_request_from_inspect
from portal.engines.models import (
    ContainerInfo,
    ImageInfo,
    MountInfo,
    NetworkAttachment,
    NetworkInfo,
    PortBinding,
    PruneResult,
    VolumeInfo,
)

_CONTAINER_FIELDS = {f.name for f in fields(ContainerInfo)}
_IMAGE_FIELDS = {f.name for f in fields(ImageInfo)}
_VOLUME_FIELDS = {f.name for f in fields(VolumeInfo)}
_NETWORK_FIELDS = {f.name for f in fields(NetworkInfo)}


def port_binding(item: dict[str, Any]) -> PortBinding:
    """Build a PortBinding from the agent's port shape."""
    return PortBinding(
        container_port=int(item["container_port"]),
        protocol=item.get("protocol") or "tcp",
        host_port=item.get("host_port"),
        host_ip=item.get("host_ip") or "",
    )


def container_info(item: dict[str, Any]) -> ContainerInfo:
    """Build a ContainerInfo from the agent's container shape (list or inspect)."""
    values = {key: value for key, value in item.items() if key in _CONTAINER_FIELDS}
    values["ports"] = [port_binding(port) for port in item.get("ports") or []]
    values["labels"] = item.get("labels") or {}
    values["restart_count"] = item.get("restart_count") or 0
    # An agent older than these fields leaves them out: the dataclass defaults stand in.
    values["mounts"] = [MountInfo(**mount) for mount in item.get("mounts") or []]
    values["networks"] = [NetworkAttachment(**net) for net in item.get("networks") or []]
    values["env"] = item.get("env") or []
    # The agent's inspect carries Docker's document as "raw": the GPUs are read from it.
    values["gpus"] = gpu_request_from_inspect(item["raw"]) if item.get("raw") else None
    return ContainerInfo(**values)


def image_info(item: dict[str, Any]) -> ImageInfo:
    """Build an ImageInfo from the agent's image shape."""
    return ImageInfo(**{key: value for key, value in item.items() if key in _IMAGE_FIELDS})


def volume_info(item: dict[str, Any]) -> VolumeInfo:
    """Build a VolumeInfo from the agent's volume shape."""
    return VolumeInfo(**{key: value for key, value in item.items() if key in _VOLUME_FIELDS})


def network_info(item: dict[str, Any]) -> NetworkInfo:
    """Build a NetworkInfo from the agent's network shape."""
    return NetworkInfo(**{key: value for key, value in item.items() if key in _NETWORK_FIELDS})


def prune_result(item: dict[str, Any]) -> PruneResult:
    """Build a PruneResult from the agent's prune answer."""
    return PruneResult(list(item.get("deleted") or []), int(item.get("space_reclaimed") or 0))
