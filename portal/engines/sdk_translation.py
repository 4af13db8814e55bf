"""Translate between the contract and the docker SDK: specs to create arguments, errors back."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.types import DeviceRequest, Mount

from portal.engines.base import LabelFilter
from portal.engines.errors import BadRequest, Conflict, EngineError, NotFound, Unavailable
from portal.engines.models import ContainerSpec

T = TypeVar("T")


def _mapped(error: Exception) -> EngineError:
    """Map docker SDK errors to the contract's errors, like the agent maps HTTP statuses."""
    if isinstance(error, docker.errors.NotFound):
        return NotFound(str(error.explanation or error))
    if isinstance(error, docker.errors.APIError):
        status = error.status_code or 0
        message = str(error.explanation or error)
        # 403: the object forbids it (a built-in network, one with running containers)
        if status in (403, 409):
            return Conflict(message)
        if status == 400:
            return BadRequest(message)
        return EngineError(message, {"engine_status": status})
    if isinstance(error, docker.errors.DockerException | requests.RequestException):
        return Unavailable(f"docker engine unreachable: {error}")
    raise error


def translate_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Raise portal.engines.errors instead of docker SDK errors."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (docker.errors.DockerException, requests.RequestException) as error:
            raise _mapped(error) from error

    return wrapper


def label_filters(labels: LabelFilter | None) -> list[str]:
    """The engine's label filters: KEY for any value, KEY=VALUE for one."""
    return [key if value is None else f"{key}={value}" for key, value in (labels or {}).items()]


def host_config_args(spec: ContainerSpec) -> dict[str, Any]:
    bindings: dict[str, list[tuple[str, int | None]]] = {}
    for port in spec.ports:
        key = f"{port.container_port}/{port.protocol}"
        bindings.setdefault(key, []).append((port.host_ip, port.host_port))
    mounts = [
        Mount(
            v.target,
            v.source,
            type=v.type or ("bind" if v.source.startswith("/") else "volume"),
            read_only=v.read_only,
        )
        for v in spec.volumes
    ]
    args: dict[str, Any] = {"port_bindings": bindings, "mounts": mounts}
    if spec.restart_policy is not None:
        args["restart_policy"] = {
            "Name": spec.restart_policy.name,
            "MaximumRetryCount": spec.restart_policy.maximum_retry_count,
        }
    if spec.cpus is not None:
        args["nano_cpus"] = int(spec.cpus * 1e9)
    if spec.memory_bytes is not None:
        args["mem_limit"] = spec.memory_bytes
    if spec.gpus is not None:
        ids = spec.gpus.device_ids
        args["device_requests"] = [
            DeviceRequest(
                driver=spec.gpus.driver,
                count=0 if ids is not None else spec.gpus.count,
                device_ids=ids,
                capabilities=[["gpu"]],
            )
        ]
    if spec.network is not None:
        args["network_mode"] = spec.network
    return args
