"""Rules checked before any change reaches a host, each failing with a clear 4xx.

Host not ready (409), image reference invalid (422), a published port already taken on the
host by another application or container (409), more GPUs asked than the host has free (409).
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from sqlalchemy import select, true

from portal.apps.compose import published_ports, service_images
from portal.apps.models import COMPOSE, Application, AppRevision
from portal.catalog.references import parse_image_reference
from portal.core.errors import Conflict
from portal.engines import EngineError
from portal.extensions import db
from portal.hosts.models import READY, Host

REMOVED = "removed"


def check_deployable(host: Host, app: Application, spec: dict[str, Any], gpus: list[int]) -> None:
    """Raise before deploying `spec` of `app` to `host` when a rule forbids it."""
    check_host_ready(host)
    check_images(app.kind, spec)
    check_ports_free(host, app, _ports_of(app.kind, spec))
    check_gpus_free(host, app, gpus)


def check_host_ready(host: Host) -> None:
    if host.status != READY:
        reason = f": {host.status_reason}" if host.status_reason else ""
        raise Conflict(
            f"Host '{host.name}' is {host.status}, not ready{reason}.", {"host_id": [host.status]}
        )


def check_images(kind: str, spec: dict[str, Any]) -> None:
    images = service_images(spec["compose"]) if kind == COMPOSE else [spec["image"]]
    for image in images:
        parse_image_reference(image, "image")


def _ports_of(kind: str, spec: dict[str, Any]) -> list[int]:
    if kind == COMPOSE:
        return published_ports(spec["compose"])
    return [port["host_port"] for port in spec.get("ports", []) if port.get("host_port")]


def other_apps_on_host(host: Host, app: Application) -> list[tuple[Application, AppRevision]]:
    """Other live applications on the host, each with the revision it runs (or will run)."""
    query = select(Application).where(
        Application.host_id == host.id,
        Application.id != app.id if app.id else true(),
        Application.status != REMOVED,
    )
    pairs = []
    for other in db.session.scalars(query):
        number = other.deployed_revision or other.latest_revision
        revision = next((r for r in other.revisions if r.number == number), None)
        if revision is not None:
            pairs.append((other, revision))
    return pairs


def check_ports_free(host: Host, app: Application, ports: list[int]) -> None:
    """Refuse host ports that another application, container or process already holds."""
    if len(set(ports)) != len(ports):
        raise Conflict("The same host port is published twice.", {"ports": ["duplicate host port"]})
    for other, revision in other_apps_on_host(host, app):
        taken = set(ports) & set(_ports_of(other.kind, revision.spec))
        if taken:
            port = min(taken)
            raise Conflict(
                f"Port {port} on '{host.name}' is already used by application '{other.name}'.",
                {"ports": [f"{port} taken"]},
            )
    if ports:
        _check_ports_on_engine(host, app, ports)


def _check_ports_on_engine(host: Host, app: Application, ports: list[int]) -> None:
    from portal.apps.lifecycle import app_containers, engine_of

    if not host.is_local and not host.agent_url:
        # No agent to ask (a host made ready by hand); the engine itself refuses a taken port
        # when the playbook runs, and the operation fails with its message.
        return
    with engine_of(host) as engine:
        own = {info.id for info in app_containers(engine, app)} if app.id else set()
        try:
            containers = engine.list_containers(include_stopped=False)
        except EngineError as exc:
            raise Conflict(f"Cannot check ports on '{host.name}': {exc.message}") from None
        for info in containers:
            held = {binding.host_port for binding in info.ports} & set(ports)
            if held and info.id not in own:
                port = min(held)  # type: ignore[type-var]
                raise Conflict(
                    f"Port {port} on '{host.name}' is already published by container '{info.name}'.",
                    {"ports": [f"{port} taken"]},
                )
        if host.is_local:
            _check_ports_bindable(host, ports, own_running=bool(own))


def _check_ports_bindable(host: Host, ports: list[int], own_running: bool) -> None:
    """On the Spectr node itself, a port some other process listens on is taken too."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # Connections of a container that just went leave TIME_WAIT entries; only a
            # listener should make the port count as taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and not own_running:
                    raise Conflict(
                        f"Port {port} on '{host.name}' is already in use by another process.",
                        {"ports": [f"{port} taken"]},
                    ) from None


def gpus_in_use(host: Host, app: Application) -> dict[int, str]:
    """GPU index -> name of the other application that holds it."""
    return {
        index: other.name
        for other, revision in other_apps_on_host(host, app)
        for index in revision.gpu_indexes or []
    }


def check_gpus_free(host: Host, app: Application, gpus: list[int]) -> None:
    if not gpus:
        return
    present = {gpu.index for gpu in host.gpus}
    missing = sorted(set(gpus) - present)
    if missing:
        raise Conflict(
            f"Host '{host.name}' has no GPU {missing[0]} (it has {len(present)}).",
            {"gpus": [f"no GPU {missing[0]}"]},
        )
    used = gpus_in_use(host, app)
    free = sorted(present - set(used))
    if len(gpus) > len(free):
        raise Conflict(
            f"{len(gpus)} GPUs asked but '{host.name}' has {len(free)} free ({', '.join(map(str, free)) or 'none'}).",
            {"gpus": ["more GPUs than free"]},
        )
    clash = sorted(set(gpus) & set(used))
    if clash:
        raise Conflict(
            f"GPU {clash[0]} on '{host.name}' is used by application '{used[clash[0]]}'.",
            {"gpus": [f"GPU {clash[0]} in use"]},
        )
