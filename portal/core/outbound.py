"""Where Spectr may send requests that users aim (operation callbacks, event webhooks).

Any operator can name a callback URL, and the worker that sends it sits inside the perimeter:
without a rule, `http://169.254.169.254/` reads a cloud's instance metadata (credentials) and
link-local or multicast addresses reach what no user should. So link-local, cloud-metadata,
multicast and unspecified networks are refused (SPECTR_OUTBOUND_DENY_NETWORKS), and an
installation may allow only listed networks (SPECTR_OUTBOUND_ALLOW_NETWORKS). Addresses are
checked when the URL is given (an IP literal) and again, resolved, right before each send.
A name that resolves differently between that check and the connection (DNS rebinding) is
not caught; the deny-list is a guard rail, not a firewall.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx
import marshmallow as ma
from flask import current_app

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(Exception):
    """The URL points where Spectr does not send requests."""


def check_url(url: str, *, resolve: bool) -> None:
    """Raise OutboundRefused when `url`'s host is (or, resolved, reaches) a refused address."""
    host = urlsplit(url).hostname or ""
    for address in _addresses(host, resolve):
        reason = _refusal(address)
        if reason:
            raise OutboundRefused(f"Spectr does not send requests to {address}: {reason}.")


def validate_outbound_url(value: str) -> None:
    """Marshmallow validator: refuse an IP literal on a refused network when the URL is given."""
    try:
        check_url(value, resolve=False)
    except OutboundRefused as exc:
        raise ma.ValidationError(str(exc)) from None


def post(url: str, **kwargs: Any) -> httpx.Response:
    """httpx.post, after checking where the URL's host resolves to."""
    check_url(url, resolve=True)
    return httpx.post(url, **kwargs)


def _addresses(host: str, resolve: bool) -> list[Address]:
    try:
        return [_unmapped(ipaddress.ip_address(host))]
    except ValueError:
        pass
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []  # the send fails with its own clear connect error
    return [_unmapped(ipaddress.ip_address(info[4][0].split("%")[0])) for info in infos]


def _unmapped(address: Address) -> Address:
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _refusal(address: Address) -> str | None:
    denied, allowed = _networks(
        current_app.config["SPECTR_OUTBOUND_DENY_NETWORKS"] or "",
        current_app.config["SPECTR_OUTBOUND_ALLOW_NETWORKS"] or "",
    )
    for network in denied:
        if address in network:
            return f"{network} is refused (SPECTR_OUTBOUND_DENY_NETWORKS)"
    if allowed and not any(address in network for network in allowed):
        return "it is outside SPECTR_OUTBOUND_ALLOW_NETWORKS"
    return None


@lru_cache(maxsize=8)
def _networks(denied: str, allowed: str) -> tuple[list[Network], list[Network]]:
    return parse_networks(denied, "DENY"), parse_networks(allowed, "ALLOW")


def parse_networks(text: str, which: str) -> list[Network]:
    """Read a comma-separated list of networks, naming the setting when one is malformed."""
    try:
        return [ipaddress.ip_network(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError as exc:
        raise ValueError(f"SPECTR_OUTBOUND_{which}_NETWORKS: {exc}") from None


def check_settings(config: dict[str, Any]) -> None:
    """Fail at start, not at the first callback, when a network list is malformed."""
    parse_networks(config["SPECTR_OUTBOUND_DENY_NETWORKS"] or "", "DENY")
    parse_networks(config["SPECTR_OUTBOUND_ALLOW_NETWORKS"] or "", "ALLOW")
