"""Model artifacts for the API, pages and CLI: revisions, files, hosts, and the operations that
import models, put them on hosts and take them off."""

from __future__ import annotations

import os
import re
import shutil
from typing import IO, Any

from flask import current_app, g, has_request_context
from sqlalchemy import select

from portal.apps.models import Application
from portal.artifacts import staging
from portal.artifacts.models import PRESENT, HostModel, ModelRevision
from portal.artifacts.serving import AGENT_MODELS_DIR
from portal.catalog import service as catalog
from portal.catalog.models import LlmModel
from portal.core.errors import Conflict, NotFound, UpstreamUnavailable, ValidationFailed
from portal.core.operations.models import Operation
from portal.core.operations.service import create_operation
from portal.core.security import current_principal
from portal.engines import EngineError
from portal.extensions import db
from portal.hosts.models import READY, Host
from portal.hosts.service import engine_for, get_host
from portal.registry import service as registry_service
from portal.registry.errors import RegistryNotFound, RegistryUnreachable

# A model name is also a repository path component in the registry (models/<name>).
MODEL_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
NAME_ERROR = "lowercase letters, digits and . _ - between them (it names the registry repository)"
DISK_MARGIN = 1024**3  # what a host keeps free beyond the model (logs, images, the runtime)


def check_model_name(name: str) -> str:
    if not MODEL_NAME.fullmatch(name) or len(name) > 120:
        raise ValidationFailed(f"Model name '{name}': {NAME_ERROR}.", {"name": [NAME_ERROR]})
    return name


def revisions(model: LlmModel) -> list[ModelRevision]:
    query = select(ModelRevision).filter_by(model_id=model.id).order_by(ModelRevision.number.desc())
    return list(db.session.scalars(query))


def get_revision(model: LlmModel, number: int | None = None) -> ModelRevision:
    """A revision by number, or the latest; NotFound for a model never imported."""
    query = select(ModelRevision).filter_by(model_id=model.id)
    query = query.filter_by(number=number) if number else query
    revision = db.session.scalar(query.order_by(ModelRevision.number.desc()).limit(1))
    if revision is None:
        what = f"revision {number}" if number else "imported files"
        raise NotFound(f"Model '{model.name}' has no {what}.")
    return revision


def holders(model: LlmModel, project_ids: list[int] | None = None) -> list[HostModel]:
    """Every host cache entry of any revision of the model, on hosts of these projects (None:
    of every project)."""
    query = (
        select(HostModel)
        .join(ModelRevision, ModelRevision.id == HostModel.revision_id)
        .where(ModelRevision.model_id == model.id)
        .order_by(HostModel.host_id, ModelRevision.number.desc())
    )
    if project_ids is not None:
        query = query.join(Host, Host.id == HostModel.host_id)
        query = query.where(Host.project_id.in_(project_ids))
    return list(db.session.scalars(query))


def host_models(host: Host) -> list[HostModel]:
    return list(db.session.scalars(select(HostModel).filter_by(host_id=host.id)))


def hosts_holding_latest(model: LlmModel) -> set[int]:
    """Hosts whose cache holds the model's latest revision (none for a model never imported)."""
    try:
        return hosts_holding(get_revision(model))
    except NotFound:
        return set()


def cache_disk_free_bytes(host: Host) -> int | None:
    """Free bytes on the disk of the host's model cache, from its last facts (None: unknown).

    Facts are as old as the last bootstrap or refresh: good for ranking hosts; a distribution
    asks the host itself before anything moves.
    """
    root = current_app.config["SPECTR_MODELS_DIR"] if host.is_local else AGENT_MODELS_DIR
    disks = [d for d in (host.facts or {}).get("disks") or [] if isinstance(d, dict)]
    mounts = [
        d
        for d in disks
        if root == d.get("mount") or root.startswith(f"{str(d.get('mount')).rstrip('/')}/")
    ]
    if host.is_local and not mounts:
        return shutil.disk_usage(_existing_parent(root)).free
    if not mounts:
        return None
    disk = max(mounts, key=lambda d: len(str(d.get("mount"))))
    free_mb = disk.get("free_mb")
    return int(free_mb) * 1024 * 1024 if isinstance(free_mb, int) else None


def _existing_parent(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path) or "/"
    return path


def hosts_holding(revision: ModelRevision) -> set[int]:
    rows = select(HostModel.host_id).filter_by(revision_id=revision.id, state=PRESENT)
    return set(db.session.scalars(rows))


def _start(kind: str, params: dict[str, Any], target: str) -> Operation:
    operation, _ = create_operation(
        kind,
        params,
        target=target,
        requested_by=current_principal() if has_request_context() else None,
        request_id=g.get("request_id") if has_request_context() else None,
    )
    return operation


def _requester() -> str | None:
    principal = current_principal() if has_request_context() else None
    return getattr(principal, "username", None)


def import_upload(
    stream: IO[bytes], length: int | None, filename: str, name: str, archive: bool, extra: dict
) -> Operation:
    """Write an uploaded model file or archive to disk; an operation stores it."""
    check_model_name(name)
    registry_service.require_spectr_registry()
    path = staging.receive_upload(stream, length, filename)
    source = {"kind": "upload", "path": str(path), "filename": filename, "archive": archive}
    try:
        return _start_import(name, source, extra)
    except Exception:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def import_folder(name: str, path: str, extra: dict) -> Operation:
    """Import a folder (or one file) on the Spectr node: a disk brought into the perimeter."""
    if not path.startswith("/"):
        raise ValidationFailed("The path must be absolute.", {"path": ["not absolute"]})
    return import_from(name, {"kind": "folder", "path": path}, extra)


def import_from(name: str, source: dict[str, Any], extra: dict) -> Operation:
    """Import from a folder, a Hub mirror, a bucket or another registry, as an operation.

    The operation's parameters name the mirror or registry by id, never its credentials: those
    stay encrypted in their own rows and are read by the worker.
    """
    check_model_name(name)
    registry_service.require_spectr_registry()
    if "source_id" in source:
        from portal.artifacts.sources import get_source

        mirror = get_source(source["source_id"])
        if mirror.kind != source["kind"]:
            message = (
                f"Model source '{mirror.name}' is a {mirror.kind} source, not {source['kind']}."
            )
            raise ValidationFailed(message, {source["kind"]: [message]})
    if source["kind"] == "registry":
        registry_service.get_registry(source["registry_id"])
    return _start_import(name, source, extra)


def _start_import(name: str, source: dict[str, Any], extra: dict[str, Any]) -> Operation:
    params = {"name": name, "source": source, "requested_by": _requester(), **extra}
    return _start("model.import", params, f"model:{name}")


def distribute(model: LlmModel, host_ids: list[int], number: int | None = None) -> Operation:
    """Put a revision on hosts; refuse hosts that are not ready or whose disk cannot hold it."""
    revision = get_revision(model, number)
    registry_service.require_spectr_registry()
    hosts = [get_host(host_id) for host_id in dict.fromkeys(host_ids)]
    for host in hosts:
        check_host_can_hold(host, revision)
    params = {"revision_id": revision.id, "host_ids": [h.id for h in hosts]}
    names = ", ".join(h.name for h in hosts)
    return _start("model.distribute", params, f"model:{model.name}:r{revision.number}@{names}")


def check_host_can_hold(host: Host, revision: ModelRevision) -> None:
    """409 when the host is not ready or its model cache's disk is too small for the files."""
    if not host.is_local and host.status != READY:
        raise Conflict(f"Host '{host.name}' is {host.status}, not ready.", {"host_ids": [host.id]})
    if host.id in hosts_holding(revision):
        return  # a pull only checks it again
    free = cache_free_bytes(host)
    need = revision.size_bytes + DISK_MARGIN
    if free < need:
        raise Conflict(
            f"Host '{host.name}' has {free} bytes free for models; {revision.repository} "
            f"revision {revision.number} needs {revision.size_bytes} bytes and "
            f"{DISK_MARGIN} are kept free.",
            {"host_ids": [host.id]},
        )


def cache_free_bytes(host: Host) -> int:
    """Free bytes of the host's model cache disk, asked of its engine."""
    try:
        with engine_for(host) as engine:
            return int(engine.model_cache().get("free_bytes"))
    except (EngineError, NotFound, TypeError, ValueError) as exc:
        raise UpstreamUnavailable(
            f"Cannot ask '{host.name}' how much disk its model cache has: "
            f"{getattr(exc, 'message', exc)}"
        ) from None


def remove_from_host(model: LlmModel, host: Host, number: int | None = None) -> Operation:
    """Take a revision off a host; refused while an application there serves the model."""
    revision = get_revision(model, number)
    users = db.session.scalars(
        select(Application.name).where(
            Application.host_id == host.id,
            Application.model_id == model.id,
            Application.status != "removed",
        )
    ).all()
    if users:
        raise Conflict(
            f"'{model.name}' is used on '{host.name}' by {', '.join(sorted(users))}; "
            "remove those applications first.",
            {"applications": sorted(users)},
        )
    params = {"revision_id": revision.id, "host_id": host.id}
    return _start(
        "model.remove_from_host", params, f"model:{model.name}:r{revision.number}@{host.name}"
    )


def release_model_files(model: LlmModel) -> None:
    """Before a model leaves the catalog: refuse while hosts hold its files, then delete its
    revisions' manifests from Spectr's registry so garbage collection reclaims the blobs."""
    held = [row for row in holders(model) if row.state == PRESENT]
    if held:
        names = sorted({row.host.name for row in held})
        raise Conflict(
            f"Hosts still hold the files of '{model.name}': {', '.join(names)}; remove them "
            "from those hosts first.",
            {"hosts": names},
        )
    stored = revisions(model)
    registry = registry_service.spectr_registry()
    if not stored or registry is None:
        return
    try:
        with registry_service.client_for(registry, timeout=30) as client:
            for revision in stored:
                try:
                    client.delete_manifest(revision.repository, revision.manifest_digest)
                except RegistryNotFound:
                    continue  # already gone (garbage collected, deleted by hand)
    except RegistryUnreachable as exc:
        raise UpstreamUnavailable(
            f"Cannot delete the files of '{model.name}' from Spectr's registry now: "
            f"{exc.message} Try again once it answers."
        ) from None


def model_by_name_or_id(value: str) -> LlmModel:
    if value.isdigit():
        return catalog.get_model(int(value))
    model = db.session.scalar(select(LlmModel).filter_by(name=value))
    if model is None:
        raise NotFound(f"No model named '{value}'.")
    return model
