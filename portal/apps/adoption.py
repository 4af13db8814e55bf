"""Adopt containers and compose projects already running on a host, without touching them.

The adopted application's revision 1 records what the engine shows (image, published ports,
labels, the host's GPUs it asks for). The engine contract does not expose a container's env or
command, so they are not in that revision: the next revision an operator writes is deployed in
full and replaces the container. An adopted application holds its GPUs like a deployed one:
adoption is refused over the project's quotas, and deploys elsewhere leave those GPUs alone.
"""

from __future__ import annotations

from typing import Any

from portal.apps.lifecycle import engine_of, summarize
from portal.apps.models import COMPOSE, CONTAINER, Application, AppRevision
from portal.apps.service import _actor, _commit_unique, list_apps
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, UpstreamUnavailable
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo, EngineError
from portal.engines import errors as engine_errors
from portal.engines.models import GpuRequest
from portal.extensions import db
from portal.hosts.models import Host
from portal.hosts.service import get_host
from portal.projects.quotas import check_application_quota, check_gpu_quotas

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def adoptable(host_id: int) -> list[dict[str, Any]]:
    """Containers and compose projects on the host that no application covers yet."""
    host = get_host(host_id)
    known = {app.name for app in list_apps(host.id)}
    try:
        with engine_of(host) as engine:
            containers = engine.list_containers()
    except EngineError as exc:
        raise UpstreamUnavailable(
            f"Cannot list containers on '{host.name}': {exc.message}"
        ) from None
    projects: dict[str, list[ContainerInfo]] = {}
    found: list[dict[str, Any]] = []
    for info in containers:
        project = info.labels.get(PROJECT_LABEL)
        if project:
            projects.setdefault(project, []).append(info)
        elif info.name not in known:
            found.append(
                {"kind": CONTAINER, "name": info.name, "image": info.image, "state": info.state}
            )
    for project, members in sorted(projects.items()):
        if project not in known:
            services = sorted(m.labels.get(SERVICE_LABEL, m.name) for m in members)
            found.append(
                {
                    "kind": COMPOSE,
                    "name": project,
                    "services": services,
                    "state": summarize(members)[0],
                }
            )
    return found


def adopt(host_id: int, kind: str, name: str) -> Application:
    """Record a running container or compose project as an application, as it is."""
    host = get_host(host_id)
    with engine_of(host) as engine:
        if kind == COMPOSE:
            listed = engine.list_containers(labels={PROJECT_LABEL: name})
            if not listed:
                raise NotFound(f"No compose project '{name}' on '{host.name}'.")
            members = [engine.inspect_container(m.id) for m in listed]  # with their GPUs
            spec: dict[str, Any] = {
                "compose": {"services": {_service(m): _service_spec(m) for m in members}}
            }
        else:
            try:
                members = [engine.inspect_container(name)]
            except (engine_errors.NotFound, engine_errors.BadRequest):
                raise NotFound(f"No container '{name}' on '{host.name}'.") from None
            if PROJECT_LABEL in members[0].labels:
                raise Conflict(
                    f"Container '{name}' belongs to compose project '{members[0].labels[PROJECT_LABEL]}'; adopt the project."
                )
            spec = _container_spec(members[0])
    status, detail = summarize(members)
    gpus = sorted({index for m in members for index in gpu_indexes(host, m.gpus)})
    if kind == CONTAINER:
        spec["gpus"] = gpus
    check_application_quota(host.project_id)
    check_gpu_quotas(host.project_id, None, host.id, gpus)
    app = Application(
        name=members[0].name if kind == CONTAINER else name,
        host_id=host.id,
        project_id=host.project_id,
        kind=kind,
        latest_revision=1,
        deployed_revision=1,
        adopted=True,
        status=status,
        status_detail=detail,
        status_checked_at=utcnow(),
    )
    spec["secret_env_keys"] = []
    app.revisions.append(
        AppRevision(
            number=1, spec=spec, gpu_indexes=gpus, note="adopted as found", created_by=_actor()
        )
    )
    db.session.add(app)
    record_audit("app.adopt", f"app:{app.name}", details={"host": host.name, "kind": kind})
    _commit_unique(app, host.name)
    return app


def gpu_indexes(host: Host, request: GpuRequest | None) -> list[int]:
    """The indexes of the host's GPUs a container's request names (by index or UUID) or, for
    a count, the first ones (all for -1), as the nvidia runtime picks them. Ids the host's GPU
    facts do not list are left out: Spectr cannot count or place what it does not know."""
    if request is None:
        return []
    gpus = sorted(host.gpus, key=lambda gpu: gpu.index)
    if request.device_ids is None:
        return [gpu.index for gpu in (gpus if request.count < 0 else gpus[: request.count])]
    by_id = {str(gpu.index): gpu.index for gpu in gpus} | {g.uuid: g.index for g in gpus if g.uuid}
    return sorted({by_id[ident] for ident in request.device_ids if ident in by_id})


def _service(info: ContainerInfo) -> str:
    return info.labels.get(SERVICE_LABEL, info.name)


def _user_labels(info: ContainerInfo) -> dict[str, str]:
    return {
        k: v for k, v in info.labels.items() if not k.startswith(("com.docker.compose.", "spectr."))
    }


def _ports(info: ContainerInfo) -> list[dict[str, Any]]:
    return [
        {
            "container_port": p.container_port,
            "host_port": p.host_port,
            "host_ip": p.host_ip or "0.0.0.0",
            "protocol": p.protocol,
        }
        for p in info.ports
        if p.host_port
    ]


def _container_spec(info: ContainerInfo) -> dict[str, Any]:
    return {
        "image": info.image,
        "command": [],
        "env": {},
        "ports": _ports(info),
        "volumes": [],
        "labels": _user_labels(info),
        "restart_policy": "unless-stopped",
        "gpus": [],
        "pull": "missing",
        "adopted_container_id": info.id,
    }


def _service_spec(info: ContainerInfo) -> dict[str, Any]:
    ports = [f"{p['host_ip']}:{p['host_port']}:{p['container_port']}" for p in _ports(info)]
    return {"image": info.image, **({"ports": ports} if ports else {})}
