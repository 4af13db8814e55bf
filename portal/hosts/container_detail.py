"""One container of a host as a person reads it: inspect summary, ports as links, environment
with secrets masked, mounts, networks, labels; and its live resource samples."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import asdict
from typing import Any

from portal.core.errors import Conflict
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo, PortBinding
from portal.hosts.models import Host
from portal.hosts.resources import MANAGED_LABEL, host_engine, is_managed, resolve_container

# Values of keys like these are never shown, whoever set them.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
APP_LABEL, REVISION_LABEL = "spectr.app", "spectr.revision"
_WILDCARDS = ("", "0.0.0.0", "::")


def container_detail(host: Host, reference: str, viewer_host: str) -> dict[str, Any]:
    """The container's page: `viewer_host` is the name the viewer reached Spectr by."""
    with host_engine(host) as engine:
        info = resolve_container(engine, reference)
    app = _application(host, info)
    secrets = _stored_secrets(app, info)
    detail = container_row(host, info, viewer_host)
    detail.update(
        command_line=shlex.join([*(info.entrypoint or []), *(info.command or [])]),
        env=masked_env(info.env, secrets),
        application={"id": app.id, "name": app.name} if app is not None else None,
    )
    return detail


def container_row(host: Host, info: ContainerInfo, viewer_host: str) -> dict[str, Any]:
    """A container as lists show it: whether Spectr deployed it, its ports as links."""
    links = [port_link(host, port, viewer_host) for port in info.ports]
    # The engine lists a port published on every address twice (IPv4 and IPv6): once is enough.
    unique = {(p["container_port"], p["protocol"], p["host_port"], p["url"]): p for p in links}
    return {**asdict(info), "managed": is_managed(info), "ports": list(unique.values())}


def masked_env(env: list[str], stored_secrets: dict[str, str]) -> list[dict[str, Any]]:
    """KEY=VALUE pairs with the value left out where it is a secret (by its name, or because
    Spectr stores it as one for the container's application)."""
    secret_values = {value for value in stored_secrets.values() if value}
    pairs = []
    for item in env:
        name, _, value = item.partition("=")
        hidden = bool(SECRET_NAME.search(name) or name in stored_secrets or value in secret_values)
        pairs.append({"name": name, "value": None if hidden else value, "masked": hidden})
    return pairs


def port_link(host: Host, port: PortBinding, viewer_host: str) -> dict[str, Any]:
    """A published port with the http:// address a browser can open, when it can open one.

    A port published on every address is reached at the host's address (the Spectr node: at
    the name the viewer used); one bound to loopback only from the node itself.
    """
    link = {**asdict(port), "url": None}
    if port.host_port is None or port.protocol != "tcp":
        return link
    address = port.host_ip or ""
    if address in _WILDCARDS:
        address = viewer_host if host.is_local else host.address
    elif _is_loopback(address) and not (host.is_local and _is_loopback(viewer_host)):
        return link  # only the host itself reaches it
    shown = f"[{address}]" if ":" in address else address
    link["url"] = f"http://{shown}:{port.host_port}"
    return link


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _application(host: Host, info: ContainerInfo) -> Any:
    """The Spectr application this container belongs to, if its labels name one of the host's."""
    from portal.apps import service as apps

    name = info.labels.get(APP_LABEL)
    if not name or MANAGED_LABEL not in info.labels:
        return None
    return next((app for app in apps.list_apps(host.id) if app.name == name), None)


def _stored_secrets(app: Any, info: ContainerInfo) -> dict[str, str]:
    """The secret env Spectr keeps (encrypted) for the revision the container runs."""
    from portal.apps import service as apps
    from portal.core.errors import NotFound

    if app is None:
        return {}
    number = info.labels.get(REVISION_LABEL, "")
    try:
        revision = apps.get_revision(app, int(number)) if number.isdigit() else None
    except NotFound:
        revision = None
    if revision is None or not revision.secret_env:
        return {}
    return dict(json.loads(revision.secret_env))


def container_stats(host: Host, reference: str) -> dict[str, Any]:
    """One resource sample of a running container, with the time it was taken."""
    with host_engine(host) as engine:
        info = resolve_container(engine, reference)
        if info.state != "running":
            raise Conflict(f"Container '{info.name}' is {info.state}: it has no live stats.")
        sample = engine.container_stats(info.id)
    return {**asdict(sample), "at": utcnow(), "container": info.name}
