"""Build the contract's value types from the agent's JSON and from Docker's documents."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from portal.engines.models import ContainerInfo, ImageInfo, PortBinding

_CONTAINER_FIELDS = {f.name for f in fields(ContainerInfo)}
_IMAGE_FIELDS = {f.name for f in fields(ImageInfo)}


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
    return ContainerInfo(**values)


def image_info(item: dict[str, Any]) -> ImageInfo:
    """Build an ImageInfo from the agent's image shape."""
    return ImageInfo(**{key: value for key, value in item.items() if key in _IMAGE_FIELDS})
