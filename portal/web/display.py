"""How pages show values: timestamps to the second, errors as "field: message" lines,
published ports as addresses to open."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import request
from markupsafe import Markup, escape

SECONDS = "%Y-%m-%d %H:%M:%S"
# Messages that only list the wrong fields: the lines under them say the same, better.
GENERIC_MESSAGES = ("Invalid input", "Invalid value", "Some fields are invalid", "Check the form")


def when(moment: datetime | None, fmt: str = SECONDS, default: str = "—") -> Markup:
    """A stored UTC timestamp shown to the second; the full value is in the tooltip."""
    if moment is None:
        return Markup(escape(default))
    full = moment.isoformat(sep=" ") + " UTC"
    stamp = moment.isoformat(timespec="seconds") + "Z"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        stamp, full, moment.strftime(fmt)
    )


# Container ports that speak HTTP by custom (web servers, model servers, notebooks, UIs).
HTTP_PORTS = frozenset(
    {80, 443, 3000, 4000, 5000, 7860, 8000, 8001, 8008, 8080, 8081, 8443, 8501, 8888, 9000,
     9090, 11434}
)  # fmt: skip
TLS_PORTS = frozenset({443, 8443})
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True)
class PublishedPort:
    """One published port as a page shows it: "host:port → 80/tcp", a link when it is HTTP."""

    text: str
    url: str | None


def published_ports(ports: list[dict[str, Any]] | None, host: Any) -> list[PublishedPort]:
    """A container's published ports, reached at the host's address when bound to any."""
    shown = []
    for port in ports or []:
        address = port.get("host_ip") or ""
        if address in ANY_ADDRESS:
            address = _address_of(host)
        if ":" in address:
            address = f"[{address}]"
        where = f"{address}:{port['host_port']}"
        number, protocol = port["container_port"], port.get("protocol") or "tcp"
        url = None
        if protocol == "tcp" and number in HTTP_PORTS:
            url = f"{'https' if number in TLS_PORTS else 'http'}://{where}/"
        shown.append(PublishedPort(f"{where} → {number}/{protocol}", url))
    return shown


def _address_of(host: Any) -> str:
    """Where a browser reaches a host: the Spectr node is where this page came from."""
    if host.is_local:
        return urlsplit(f"//{request.host}").hostname or "127.0.0.1"
    return str(host.address)


def error_lines(details: Mapping[str, Any] | None) -> list[str]:
    """Marshmallow's nested error messages as lines like "upstreams[0].url: Not a valid URL."."""
    return _lines(details, "")


def _lines(details: Mapping[str, Any] | None, sentence: str) -> list[str]:
    lines: list[str] = []
    for path, message in _leaves(details or {}, ""):
        line = f"{path}: {message}" if path else message
        if line not in lines and message not in sentence:
            lines.append(line)
    return lines


def _leaves(errors: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            yield from _leaves(value, _join(path, key))
    elif isinstance(errors, list | tuple):
        for item in errors:
            yield from _leaves(item, path)
    else:
        yield path, str(errors)


def _join(path: str, key: Any) -> str:
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return f"{path}[{key}]"
    if key == "_schema":
        return path
    return f"{path}.{key}" if path else str(key)


def describe_error(message: str, details: Mapping[str, Any] | None) -> str:
    """One text for a flash message: the sentence, then each wrong field on its own line, once."""
    lines = _lines(details, message)  # what the sentence already says is not said again
    if not lines:
        return message
    heading = "Check these fields:" if message.startswith(GENERIC_MESSAGES) else message
    return "\n".join([heading, *lines])
