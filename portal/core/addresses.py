"""Host addresses as Spectr accepts them: an IP address, or a DNS name of well-formed labels."""

from __future__ import annotations

import ipaddress
import re

import marshmallow as ma

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_URL = re.compile(r"(?P<scheme>https?)://(?P<host>[^/:?#\[\]@]+)(:(?P<port>\d{1,5}))?/?")
ADDRESS_ERROR = "Give a host name or an IP address."


def is_host_address(text: str) -> bool:
    """An IPv4 or IPv6 address, or a host name (not digits and dots that are no IPv4)."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", text):  # 256.1.1.1 is no address, and no name either
        return False
    return bool(_HOST_NAME.fullmatch(text))


def validate_host_address(value: str) -> None:
    if not is_host_address(value):
        raise ma.ValidationError(address_error(value))


def address_error(value: str) -> str:
    """Why `value` is no address, as specifically as can be said."""
    if len(value) <= 45 and re.fullmatch(r"[0-9.]+", value):
        return f"{value} is not an IPv4 address: four numbers from 0 to 255, like 10.0.0.12."
    return ADDRESS_ERROR


def validate_base_url(value: str) -> None:
    """An http(s) URL of a host and an optional port, nothing else (a registry's base URL)."""
    match = _URL.fullmatch(value)
    if not (match and is_host_address(match["host"]) and int(match["port"] or 1) <= 65535):
        raise ma.ValidationError(
            "Give the registry's base URL, like https://registry.example:5000."
        )
