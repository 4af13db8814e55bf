"""Catalog records: images, models and runtimes; VRAM estimates and placement of models."""

from __future__ import annotations

import string
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.catalog.models import CatalogImage, LlmModel, Runtime
from portal.catalog.placement import GpuCapacity, HostCapacity, rank_hosts
from portal.catalog.references import parse_image_reference
from portal.catalog.vram import ModelShape, VramEstimate, estimate_vram
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, SpectrError, ValidationFailed
from portal.engines import EngineError
from portal.extensions import db

TEMPLATE_PLACEHOLDERS = {"model_source", "model_name", "context_length", "port", "gpu_count"}
DEFAULT_OVERHEAD_MIB = 1024


def _get(model: type, item_id: int, label: str) -> Any:
    row = db.session.get(model, item_id)
    if row is None:
        raise NotFound(f"No {label} with id {item_id}.")
    return row


def _save(row: Any, action: str, target: str) -> Any:
    db.session.add(row)
    record_audit(action, target)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"{target} already exists.") from None
    return row


def _apply(row: Any, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(row, name, value)


# --- images ---


def list_images() -> list[CatalogImage]:
    return list(db.session.scalars(select(CatalogImage).order_by(CatalogImage.reference)))


def get_image(image_id: int) -> CatalogImage:
    return _get(CatalogImage, image_id, "image")


def create_image(fields: dict[str, Any]) -> CatalogImage:
    """Add an image; the reference is checked and split into registry, repository and tag."""
    parsed = parse_image_reference(fields["reference"], "reference")
    image = CatalogImage(
        reference=fields["reference"],
        registry_host=parsed.registry,
        repository=parsed.repository,
        tag=parsed.tag,
        digest=fields.get("digest") or parsed.digest,
        size_bytes=fields.get("size_bytes"),
        labels=fields.get("labels") or {},
        description=fields.get("description", ""),
    )
    return _save(image, "catalog.image.create", f"image:{image.reference}")


def update_image(image_id: int, fields: dict[str, Any]) -> CatalogImage:
    image = get_image(image_id)
    if "reference" in fields:
        parsed = parse_image_reference(fields["reference"], "reference")
        fields = {**fields, "registry_host": parsed.registry, "repository": parsed.repository}
        fields.setdefault("tag", parsed.tag)
    _apply(image, fields)
    return _save(image, "catalog.image.update", f"image:{image.reference}")


def delete_image(image_id: int) -> None:
    image = get_image(image_id)
    db.session.delete(image)
    record_audit("catalog.image.delete", f"image:{image.reference}")
    db.session.commit()


# --- models ---


def list_models(family: str | None = None) -> list[LlmModel]:
    query = select(LlmModel).order_by(LlmModel.family, LlmModel.name)
    if family:
        query = query.where(LlmModel.family == family)
    return list(db.session.scalars(query))


def get_model(model_id: int) -> LlmModel:
    return _get(LlmModel, model_id, "model")


def create_model(fields: dict[str, Any]) -> LlmModel:
    _check_model_source(fields)
    return _save(LlmModel(**fields), "catalog.model.create", f"model:{fields['name']}")


def update_model(model_id: int, fields: dict[str, Any]) -> LlmModel:
    model = get_model(model_id)
    _apply(model, fields)
    _check_model_source({"source_kind": model.source_kind, "source": model.source})
    return _save(model, "catalog.model.update", f"model:{model.name}")


def delete_model(model_id: int) -> None:
    from portal.artifacts.service import release_model_files

    model = get_model(model_id)
    release_model_files(model)  # 409 while hosts hold its files; its artifacts leave the registry
    db.session.delete(model)
    record_audit("catalog.model.delete", f"model:{model.name}")
    db.session.commit()


def _check_model_source(fields: dict[str, Any]) -> None:
    kind, source = fields["source_kind"], fields["source"]
    if kind == "image":
        parse_image_reference(source, "source")
    elif kind == "path" and not source.startswith("/"):
        raise ValidationFailed("A path source must be absolute.", {"source": ["not absolute"]})
    elif kind == "huggingface" and source.count("/") != 1:
        message = "A Hugging Face source is 'owner/repository'."
        raise ValidationFailed(message, {"source": [message]})


# --- runtimes ---


def list_runtimes() -> list[Runtime]:
    return list(db.session.scalars(select(Runtime).order_by(Runtime.name)))


def get_runtime(runtime_id: int) -> Runtime:
    return _get(Runtime, runtime_id, "runtime")


def create_runtime(fields: dict[str, Any]) -> Runtime:
    _check_runtime(fields)
    return _save(Runtime(**fields), "catalog.runtime.create", f"runtime:{fields['name']}")


def update_runtime(runtime_id: int, fields: dict[str, Any]) -> Runtime:
    runtime = get_runtime(runtime_id)
    _apply(runtime, fields)
    _check_runtime({"image": runtime.image, "command_template": runtime.command_template})
    return _save(runtime, "catalog.runtime.update", f"runtime:{runtime.name}")


def delete_runtime(runtime_id: int) -> None:
    runtime = get_runtime(runtime_id)
    db.session.delete(runtime)
    record_audit("catalog.runtime.delete", f"runtime:{runtime.name}")
    db.session.commit()


def _check_runtime(fields: dict[str, Any]) -> None:
    parse_image_reference(fields["image"], "image")
    for argument in fields.get("command_template") or []:
        unknown = template_fields(argument) - TEMPLATE_PLACEHOLDERS
        if unknown:
            known = ", ".join(sorted(TEMPLATE_PLACEHOLDERS))
            message = (
                f"Unknown placeholder {{{sorted(unknown)[0]}}} in '{argument}'; known: {known}."
            )
            raise ValidationFailed(message, {"command_template": [message]})


def template_fields(argument: str) -> set[str]:
    """Return the placeholder names used in one command argument."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(argument) if name is not None}
    except ValueError as exc:
        message = f"Bad template '{argument}': {exc}."
        raise ValidationFailed(message, {"command_template": [message]}) from None


def render_command(runtime: Runtime, values: dict[str, Any]) -> list[str]:
    """Fill the runtime's command template with a deployment's values."""
    return [argument.format_map(values) for argument in runtime.command_template]


# --- estimates and placement ---


def model_shape(model: LlmModel) -> ModelShape:
    return ModelShape(
        model.parameters_billions,
        model.quantization,
        model.num_layers,
        model.num_kv_heads,
        model.head_dim,
    )


def estimate_for(
    model: LlmModel,
    runtime: Runtime | None = None,
    context_length: int | None = None,
    sequences: int = 1,
) -> VramEstimate:
    """Estimate the VRAM `model` needs on `runtime` (the model's full context by default)."""
    overhead = runtime.overhead_mib if runtime else DEFAULT_OVERHEAD_MIB
    return estimate_vram(
        model_shape(model), context_length or model.context_length, overhead, sequences
    )


def host_capacities(
    model: LlmModel | None = None, project_ids: list[int] | None = None
) -> list[HostCapacity]:
    """Every host (of these projects; None: of all) with each GPU's free memory (reported use
    or Spectr's reservations), and for a model: whether the host holds its files and how much
    its model disk has free."""
    from portal.apps.service import gpu_reservations_mib
    from portal.artifacts.service import cache_disk_free_bytes, hosts_holding_latest
    from portal.hosts.service import hosts_query

    holding = hosts_holding_latest(model) if model else set()
    capacities = []
    for host in db.session.scalars(hosts_query(project_ids=project_ids)):
        reserved = gpu_reservations_mib(host.id)
        gpus = [
            GpuCapacity(
                gpu.index,
                gpu.model,
                gpu.memory_total_mib,
                gpu.memory_total_mib - max(gpu.memory_used_mib, reserved.get(gpu.index, 0)),
            )
            for gpu in host.gpus
        ]
        capacities.append(
            HostCapacity(
                host.id,
                host.name,
                host.status,
                gpus,
                host.id in holding,
                cache_disk_free_bytes(host),
            )
        )
    return capacities


def placement(
    model_id: int,
    runtime_id: int | None,
    context_length: int | None,
    sequences: int = 1,
    project_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Rank ready hosts (of these projects; None: of all) for a model and say why the others
    do not fit."""
    model = get_model(model_id)
    runtime = get_runtime(runtime_id) if runtime_id else None
    estimate = estimate_for(model, runtime, context_length, sequences)
    candidates, refused = rank_hosts(
        host_capacities(model, project_ids),
        estimate,
        bool(runtime and runtime.multi_gpu),
        needs_gpu=runtime.requires_gpu if runtime else True,
        model_bytes=model.size_bytes,
    )
    return {
        "model_id": model.id,
        "runtime": runtime.name if runtime else None,
        "estimate": estimate.as_dict(),
        "candidates": candidates,
        "refused": refused,
    }


# --- image usage ---


def _same_image(reference: str, candidate: str) -> bool:
    """Whether two references name the same image (`redis:7` is `docker.io/library/redis:7`)."""
    try:
        return (
            parse_image_reference(reference).canonical == parse_image_reference(candidate).canonical
        )
    except ValidationFailed:
        return False


def image_usage(image_id: int, project_ids: list[int] | None = None) -> dict[str, Any]:
    """Which applications use the image, and which ready hosts have it (asked live), of these
    projects (None: of all)."""
    from portal.apps.service import apps_query, revision_images
    from portal.hosts.service import engine_for, hosts_query

    image = get_image(image_id)
    apps = [
        {"app_id": app.id, "name": app.name, "host_id": app.host_id}
        for app in db.session.scalars(apps_query(project_ids=project_ids))
        if any(_same_image(image.reference, used) for used in revision_images(app))
    ]
    hosts = []
    for host in db.session.scalars(hosts_query(status="ready", project_ids=project_ids)):
        entry: dict[str, Any] = {"host_id": host.id, "name": host.name, "present": False}
        try:
            with engine_for(host) as engine:
                tags = [tag for info in engine.list_images() for tag in info.tags]
            entry["present"] = any(_same_image(image.reference, tag) for tag in tags)
        except (EngineError, SpectrError) as exc:
            entry["error"] = getattr(exc, "message", str(exc))
        hosts.append(entry)
    return {"image_id": image.id, "reference": image.reference, "apps": apps, "hosts": hosts}
