""" "Deploy model": an application made from a catalog model, a runtime, a host and GPUs."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from portal.apps.models import CONTAINER, Application
from portal.apps.service import PENDING, add_revision
from portal.artifacts import service as artifacts
from portal.artifacts import serving
from portal.artifacts.importing import REGISTRY_SOURCE
from portal.catalog import service as catalog
from portal.catalog.models import LlmModel, Runtime
from portal.catalog.placement import per_gpu_need_mib
from portal.core.errors import Conflict, ValidationFailed
from portal.hosts.models import Host
from portal.hosts.service import get_host


def deploy_model(model_id: int, body: dict[str, Any]) -> Application:
    """Create (and deploy) the model server application; refuse GPUs that cannot hold it."""
    model = catalog.get_model(model_id)
    runtime = catalog.get_runtime(body["runtime_id"])
    host = get_host(body["host_id"])
    gpus = sorted(set(body.get("gpus") or []))
    context_length = body.get("context_length") or model.context_length
    _check_runtime_fits(model, runtime, gpus)
    estimate = catalog.estimate_for(model, runtime, context_length)
    need = per_gpu_need_mib(estimate, len(gpus)) if gpus else None
    if need is not None:
        _check_gpu_memory(host.id, host.name, gpus, need)
    mount = _imported_model_mount(model, host, body.get("model_revision"))
    values = {
        "model_source": mount.model_source if mount else model.source,
        "model_name": model.name,
        "context_length": context_length,
        "port": runtime.port,
        "gpu_count": len(gpus) or 1,
    }
    container = {
        "image": body.get("image")
        or (model.source if model.source_kind == "image" else runtime.image),
        "command": body.get("command") or catalog.render_command(runtime, values),
        "env": {
            **(mount.env if mount else {}),
            **{k: v.format_map(values) for k, v in runtime.env.items()},
            **(body.get("env") or {}),
        },
        "ports": [
            {
                "container_port": runtime.port,
                "host_port": body.get("host_port"),
                "host_ip": _published_on(host),
                "protocol": "tcp",
            }
        ],
        "volumes": mount.volumes if mount else _model_volumes(model),
        "labels": {
            "spectr.model": model.name,
            "spectr.runtime": runtime.name,
            **(mount.labels if mount else {}),
        },
        "restart_policy": "unless-stopped",
        "gpus": gpus,
        "pull": body.get("pull", "missing"),
    }
    request = {
        "name": body["name"],
        "host_id": host.id,
        "kind": CONTAINER,
        "container": container,
        "secret_env": body.get("secret_env") or {},
        "note": f"{model.name} on {runtime.name}, context {context_length}",
        "deploy": body.get("deploy", True),
    }
    app = Application(
        name=body["name"],
        host_id=host.id,
        kind=CONTAINER,
        status=PENDING,
        model_id=model.id,
        runtime_id=runtime.id,
    )
    return add_revision(app, request, is_new=True, gpu_indexes=gpus, vram_reservation_mib=need)


def _check_runtime_fits(model: LlmModel, runtime: Runtime, gpus: list[int]) -> None:
    if runtime.requires_gpu and not gpus:
        raise ValidationFailed(
            f"Runtime '{runtime.name}' needs at least one GPU.", {"gpus": ["at least one GPU"]}
        )
    if len(gpus) > 1 and not runtime.multi_gpu:
        raise ValidationFailed(
            f"Runtime '{runtime.name}' runs a model on one GPU only.", {"gpus": ["one GPU only"]}
        )
    if runtime.supported_formats and model.format not in runtime.supported_formats:
        formats = ", ".join(runtime.supported_formats)
        raise ValidationFailed(
            f"Runtime '{runtime.name}' serves {formats}, not {model.format}.",
            {"runtime_id": ["format not supported"]},
        )


def _check_gpu_memory(host_id: int, host_name: str, gpus: list[int], need_mib: int) -> None:
    capacity = next((c for c in catalog.host_capacities() if c.host_id == host_id), None)
    free = {gpu.index: gpu.free_mib for gpu in capacity.gpus} if capacity else {}
    for index in gpus:
        if index in free and free[index] < need_mib:
            raise Conflict(
                f"The model needs {need_mib} MiB on each GPU; GPU {index} of '{host_name}' has {free[index]} MiB free.",
                {"gpus": [f"GPU {index}: {free[index]} MiB free, {need_mib} MiB needed"]},
            )


def _imported_model_mount(
    model: LlmModel, host: Host, number: int | None
) -> serving.ModelMount | None:
    """For a model imported into Spectr: its revision's cache folder on the host, read-only."""
    if model.source_kind != REGISTRY_SOURCE:
        return None
    return serving.model_mount(model, artifacts.get_revision(model, number), host)


def _published_on(host: Host) -> str:
    """The address the model server's port is published on: one the gateway can reach.

    On the Spectr node that is loopback; on another host, its address when that is an IP,
    else every interface (Docker publishes on IP addresses only).
    """
    if host.is_local:
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.address))
    except ValueError:
        return "0.0.0.0"


def _model_volumes(model: LlmModel) -> list[str]:
    if model.source_kind != "path":
        return []
    folder = os.path.dirname(model.source) or "/"
    return [f"{folder}:{folder}:ro"]
