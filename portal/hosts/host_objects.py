"""Images, volumes and networks of one host: lists that say who uses what, removal, prune."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from portal.core.errors import Conflict, NotFound
from portal.engines import ContainerEngine, ContainerInfo, ImageInfo, NetworkInfo
from portal.engines.base import LabelFilter
from portal.hosts.models import Host
from portal.hosts.resources import (
    MIN_ID_PREFIX,
    audited,
    host_engine,
    prune_summary,
    require_confirmation,
)


def _users(containers: list[ContainerInfo], uses: Any) -> list[str]:
    return sorted(container.name for container in containers if uses(container))


def _in_use_message(kind: str, name: str, users: list[str]) -> str:
    shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
    return f"{kind} '{name}' is in use by {shown}: remove those containers first."


def list_images(host: Host) -> list[dict[str, Any]]:
    """The host's images, newest first, each with the containers (any state) made from it."""
    with host_engine(host) as engine:
        images, containers = engine.list_images(), engine.list_containers()
    rows = []
    for image in images:
        users = _users(containers, lambda c, image_id=image.id: c.image_id == image_id)
        rows.append({**asdict(image), "containers": users, "dangling": not image.tags})
    return sorted(rows, key=lambda row: row["created"] or "", reverse=True)


def _image_named(engine: ContainerEngine, reference: str) -> ImageInfo:
    """The image a reference names exactly: a tag, a digest, its id or an id prefix of 12+."""
    image = engine.inspect_image(reference)
    bare_id = image.id.removeprefix("sha256:")
    named = (
        reference in image.tags
        or f"{reference}:latest" in image.tags
        or reference in image.digests
        or reference == image.id
        or (len(reference.removeprefix("sha256:")) >= MIN_ID_PREFIX
            and bare_id.startswith(reference.removeprefix("sha256:")))
    )  # fmt: skip
    if not named:
        raise NotFound(f"No image '{reference}': give a tag, a digest or its id.")
    return image


def remove_image(host: Host, reference: str, force: bool = False) -> None:
    """Remove an image by id (all its tags) or untag one tag; refused while containers use it."""
    with (
        audited(host, "image.remove", f"image:{reference}") as details,
        host_engine(host) as engine,
    ):
        image = _image_named(engine, reference)
        users = _users(engine.list_containers(), lambda c: c.image_id == image.id)
        details.update(id=image.id, tags=image.tags)
        if users and not force:
            raise Conflict(_in_use_message("Image", reference, users), {"containers": users})
        by_id = not {reference, f"{reference}:latest"} & {*image.tags, *image.digests}
        # By id the person means the image: every tag goes (the engine wants force for that).
        engine.remove_image(reference, force=force or (by_id and len(image.tags) > 1))


def list_volumes(host: Host) -> list[dict[str, Any]]:
    """The host's volumes by name, each with its size and the containers that mount it."""
    with host_engine(host) as engine:
        volumes, containers = engine.list_volumes(), engine.list_containers()
    rows = []
    for volume in volumes:
        users = _users(containers, lambda c, name=volume.name: _mounts_volume(c, name))
        rows.append({**asdict(volume), "containers": users})
    return sorted(rows, key=lambda row: row["name"])


def _mounts_volume(container: ContainerInfo, name: str) -> bool:
    return any(m.type == "volume" and m.name == name for m in container.mounts)


def remove_volume(host: Host, name: str) -> None:
    """Remove a volume no container uses (stopped ones count: they would lose their data)."""
    with audited(host, "volume.remove", f"volume:{name}"), host_engine(host) as engine:
        users = _users(engine.list_containers(), lambda c: _mounts_volume(c, name))
        if users:
            raise Conflict(_in_use_message("Volume", name, users), {"containers": users})
        engine.remove_volume(name)


PRUNABLE = {"images": "dangling image(s)", "volumes": "unused volume(s)"}


def prune(host: Host, kind: str, confirm: str | None, labels: LabelFilter | None = None) -> dict:
    """Remove the host's dangling images, or every volume no container uses (named ones too),
    with every given label; `confirm` must be the host's name."""
    with audited(host, f"{kind[:-1]}.prune", kind) as details:
        require_confirmation(host, confirm)
        with host_engine(host) as engine:
            pruner = engine.prune_images if kind == "images" else engine.prune_volumes
            details.update(labels=dict(labels or {}), **prune_summary(pruner(labels)))
    return details


def list_networks(host: Host) -> list[dict[str, Any]]:
    """The host's networks by name, each with the containers attached to it."""
    with host_engine(host) as engine:
        networks, containers = engine.list_networks(), engine.list_containers()
    rows = []
    for network in networks:
        users = _users(containers, lambda c, net=network: _attached(c, net))
        rows.append({**asdict(network), "builtin": network.builtin, "containers": users})
    return sorted(rows, key=lambda row: row["name"])


def _attached(container: ContainerInfo, network: NetworkInfo) -> bool:
    return any(
        a.network_id == network.id or (not a.network_id and a.name == network.name)
        for a in container.networks
    )


def _network_named(engine: ContainerEngine, reference: str) -> NetworkInfo:
    for network in engine.list_networks():
        if reference in (network.id, network.name) or (
            len(reference) >= MIN_ID_PREFIX and network.id.startswith(reference)
        ):
            return network
    raise NotFound(f"No network '{reference}': give its name or id.")


def remove_network(host: Host, reference: str) -> None:
    """Remove a network no container is attached to; the engine's built-in ones stay."""
    with (
        audited(host, "network.remove", f"network:{reference}") as details,
        host_engine(host) as engine,
    ):
        network = _network_named(engine, reference)
        details.update(id=network.id, name=network.name)
        if network.builtin:
            raise Conflict(f"Network '{network.name}' is built into Docker; it cannot be removed.")
        users = _users(engine.list_containers(), lambda c: _attached(c, network))
        if users:
            raise Conflict(_in_use_message("Network", network.name, users), {"containers": users})
        engine.remove_network(network.id)
