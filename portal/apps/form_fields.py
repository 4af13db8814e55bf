"""Fields the application forms share: KEY=VALUE lines and port lists, read as the API's
spec expects them."""

from __future__ import annotations

from typing import Any

from portal.core.errors import ValidationFailed


def key_value_lines(text: str, field: str) -> dict[str, str]:
    """KEY=VALUE lines into a mapping; a line without '=' is refused naming `field`."""
    pairs = {}
    for line in text.splitlines():
        if line.strip():
            key, sep, value = line.partition("=")
            if not sep:
                raise ValidationFailed(
                    f"'{line.strip()}' is not KEY=VALUE.", {field: ["KEY=VALUE lines"]}
                )
            pairs[key.strip()] = value.strip()
    return pairs


def port_entries(text: str) -> list[dict[str, Any]]:
    """'[IP:]HOST:CONTAINER[/udp]' entries (comma separated) into port mappings; without an IP
    a port is published on 127.0.0.1 (the spec's default)."""
    ports = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        address, _, protocol = entry.partition("/")
        ip, _, rest = address.partition(":") if address.count(":") == 2 else ("", "", address)
        host, _, container = rest.rpartition(":")
        port: dict[str, Any] = {"host_port": host or None, "container_port": container}
        if ip:
            port["host_ip"] = ip
        if protocol:
            port["protocol"] = protocol
        ports.append(port)
    return ports


def port_text(port: dict[str, Any]) -> str:
    """One port mapping as the form writes it (port_entries reads it back the same)."""
    text = str(port["container_port"])
    if port.get("host_port"):
        text = f"{port['host_port']}:{text}"
    if port.get("host_ip") not in (None, "", "127.0.0.1"):
        text = f"{port['host_ip']}:{text if port.get('host_port') else ':' + text}"
    return text + ("/udp" if port.get("protocol") == "udp" else "")
