"""Validate a container spec from the API and turn it into a Docker create body."""

from __future__ import annotations

import re
from typing import Any

from agent.errors import ApiError, invalid

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_RESTART = {"no", "always", "unless-stopped", "on-failure"}
_KNOWN = {
    "image",
    "name",
    "command",
    "entrypoint",
    "env",
    "labels",
    "ports",
    "volumes",
    "restart_policy",
    "cpus",
    "memory_bytes",
    "gpus",
    "user",
    "working_dir",
    "network",
    "start",
}
_MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses less


def _fail(field: str, message: str) -> ApiError:
    return invalid(f"{field}: {message}", field=field)


def _string(spec: dict[str, Any], field: str, required: bool = False) -> str | None:
    value = spec.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, "must be a non-empty string")
    return value


def _argv(spec: dict[str, Any], field: str) -> list[str] | None:
    value = spec.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(field, "must be a list of strings (an argv, not a shell line)")
    return value


def _mapping(spec: dict[str, Any], field: str) -> dict[str, str]:
    value = spec.get(field) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(field, "must be an object of string keys and string values")
    return value


def _port(index: int, item: Any) -> tuple[str, dict[str, str]]:
    field = f"ports[{index}]"
    if not isinstance(item, dict):
        raise _fail(field, "must be an object")
    container_port, host_port = item.get("container_port"), item.get("host_port")
    protocol = item.get("protocol", "tcp")
    host_ip = item.get("host_ip", "127.0.0.1")
    if not isinstance(container_port, int) or not 0 < container_port < 65536:
        raise _fail(field, "container_port must be an integer 1-65535")
    if host_port is not None and (not isinstance(host_port, int) or not 0 <= host_port < 65536):
        raise _fail(field, "host_port must be an integer 0-65535 or null for any")
    if protocol not in ("tcp", "udp"):
        raise _fail(field, "protocol must be tcp or udp")
    if not isinstance(host_ip, str) or not host_ip:
        raise _fail(field, "host_ip must be an address")
    binding = {"HostIp": host_ip, "HostPort": str(host_port or "")}
    return f"{container_port}/{protocol}", binding


def _ports(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    items = spec.get("ports") or []
    if not isinstance(items, list):
        raise _fail("ports", "must be a list")
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for index, item in enumerate(items):
        key, binding = _port(index, item)
        exposed[key] = {}
        bindings.setdefault(key, []).append(binding)
    return exposed, bindings


def _mounts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    items = spec.get("volumes") or []
    if not isinstance(items, list):
        raise _fail("volumes", "must be a list")
    mounts = []
    for index, item in enumerate(items):
        field = f"volumes[{index}]"
        if not isinstance(item, dict):
            raise _fail(field, "must be an object")
        source, target = item.get("source"), item.get("target")
        if not isinstance(source, str) or not source:
            raise _fail(field, "source must be a host path or a volume name")
        if not isinstance(target, str) or not target.startswith("/"):
            raise _fail(field, "target must be an absolute path in the container")
        kind = item.get("type") or ("bind" if source.startswith("/") else "volume")
        if kind not in ("bind", "volume"):
            raise _fail(field, "type must be bind or volume")
        read_only = bool(item.get("read_only", False))
        mounts.append({"Type": kind, "Source": source, "Target": target, "ReadOnly": read_only})
    return mounts


def _restart_policy(spec: dict[str, Any]) -> dict[str, Any] | None:
    value = spec.get("restart_policy")
    if value is None:
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or value.get("name") not in _RESTART:
        raise _fail("restart_policy", f"name must be one of {sorted(_RESTART)}")
    retries = value.get("maximum_retry_count", 0)
    if not isinstance(retries, int) or retries < 0:
        raise _fail("restart_policy", "maximum_retry_count must be a non-negative integer")
    return {"Name": value["name"], "MaximumRetryCount": retries}


def _device_requests(spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    value = spec.get("gpus")
    if value is None:
        return None
    if value == "all":
        value = {"count": -1}
    if not isinstance(value, dict):
        raise _fail("gpus", 'must be "all" or {"count": n} or {"device_ids": [...]}')
    count, device_ids = value.get("count"), value.get("device_ids")
    if device_ids is not None:
        if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
            raise _fail("gpus", "device_ids must be a list of GPU indexes or UUIDs")
        count = 0
    elif not isinstance(count, int) or count < -1 or count == 0:
        raise _fail("gpus", "count must be a positive integer or -1 for all")
    capabilities = value.get("capabilities") or [["gpu"]]
    request = {
        "Driver": value.get("driver", "nvidia"),
        "Count": count,
        "DeviceIDs": device_ids,
        "Capabilities": capabilities,
    }
    return [request]


def _limits(spec: dict[str, Any]) -> dict[str, int]:
    limits: dict[str, int] = {}
    cpus, memory = spec.get("cpus"), spec.get("memory_bytes")
    if cpus is not None:
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0:
            raise _fail("cpus", "must be a positive number of CPUs")
        limits["NanoCpus"] = int(cpus * 1e9)
    if memory is not None:
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < _MIN_MEMORY:
            raise _fail("memory_bytes", f"must be an integer of at least {_MIN_MEMORY} bytes")
        limits["Memory"] = memory
    return limits


def container_create_body(spec: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Return (name, Docker create body) for a validated spec, or raise 422."""
    unknown = sorted(set(spec) - _KNOWN)
    if unknown:
        raise invalid(f"unknown spec fields: {', '.join(unknown)}", fields=unknown)
    name = _string(spec, "name")
    if name is not None and not _NAME.match(name):
        raise _fail("name", "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    exposed, bindings = _ports(spec)
    host_config: dict[str, Any] = {"PortBindings": bindings, "Mounts": _mounts(spec)}
    host_config.update(_limits(spec))
    restart = _restart_policy(spec)
    if restart:
        host_config["RestartPolicy"] = restart
    devices = _device_requests(spec)
    if devices:
        host_config["DeviceRequests"] = devices
    if spec.get("network") is not None:
        host_config["NetworkMode"] = _string(spec, "network")
    body: dict[str, Any] = {
        "Image": _string(spec, "image", required=True),
        "Env": [f"{key}={value}" for key, value in _mapping(spec, "env").items()],
        "Labels": _mapping(spec, "labels"),
        "ExposedPorts": exposed,
        "HostConfig": host_config,
    }
    for field, key in (("command", "Cmd"), ("entrypoint", "Entrypoint")):
        argv = _argv(spec, field)
        if argv is not None:
            body[key] = argv
    for field, key in (("user", "User"), ("working_dir", "WorkingDir")):
        if spec.get(field) is not None:
            body[key] = _string(spec, field)
    return name, body
