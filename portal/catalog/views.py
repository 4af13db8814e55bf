"""Pages of the catalog: browse and edit models, runtimes and images; a model's estimate,
placement and the "deploy model" form (`spectr catalog ...` is in portal.catalog.cli)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.artifacts import service as artifacts
from portal.artifacts import sources
from portal.artifacts.schemas import ModelImportSchema, ModelSourceSchema
from portal.artifacts.sources import list_sources
from portal.catalog import seeding, service
from portal.catalog.schemas import FORMATS, RUNTIME_KINDS, SOURCE_KINDS, ModelSchema
from portal.catalog.vram import QUANTIZATIONS
from portal.core.errors import SpectrError, ValidationFailed
from portal.extensions import db
from portal.hosts.service import visible_host
from portal.projects.access import visible_project_ids
from portal.web.auth import page_project_role, page_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("catalog_pages", __name__, url_prefix="/catalog")
SOURCE_FORM_FIELDS = (
    "name",
    "kind",
    "url",
    "token",
    "access_key",
    "secret_key",
    "region",
    "ca_pem",
)
MODEL_FIELDS = [name for name, field in ModelSchema().fields.items() if not field.dump_only]


def form_model() -> dict[str, Any]:
    """Read the model form through the API's schema, so the page and the API agree."""
    raw = {k: v for k, v in request.form.items() if k in MODEL_FIELDS and v != ""}
    return load_form(ModelSchema(), raw)


@bp.get("")
@page_role("viewer")
def index() -> Any:
    return catalog_page()


def catalog_page(refused: str | None = None) -> Any:
    """The catalog; after a refused form (`refused` names it) with what was typed kept in it."""
    values = request.form.to_dict() if refused else {}
    page = render_template(
        "catalog/index.html",
        models=service.list_models(request.args.get("family") or None),
        runtimes=service.list_runtimes(),
        images=service.list_images(),
        missing=seeding.missing_counts(),
        registries=_registries(),
        model_sources=list_sources(),
        quantizations=QUANTIZATIONS,
        formats=FORMATS,
        source_kinds=SOURCE_KINDS,
        runtime_kinds=RUNTIME_KINDS,
        refused=refused,
        values=values,
    )
    return page, 422 if refused else 200


@bp.post("/model-sources")
@page_role("admin")
def create_model_source() -> Any:
    fields = {k: (request.form.get(k) or "").strip() or None for k in SOURCE_FORM_FIELDS}
    try:
        source = sources.create_source(ModelSourceSchema().load(fields))
        flash(f"Model source {source.name} added.")
    except ma.ValidationError as exc:
        flash_error(ValidationFailed("Check the model source.", exc.messages))
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("catalog_pages.index") + "#model-sources")


@bp.post("/model-sources/<id:source_id>/delete")
@page_role("admin")
def delete_model_source(source_id: int) -> Any:
    try:
        sources.delete_source(sources.get_source(source_id))
        flash("Model source forgotten.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("catalog_pages.index") + "#model-sources")


@bp.post("/models/import-remote")
@page_role("operator")
def import_remote() -> Any:
    try:
        kind, fields = _remote_source()
        body = ModelImportSchema().load(
            {"name": request.form.get("name", "").strip(), kind: fields}
        )
        operation = artifacts.import_from(body["name"], {"kind": kind, **body[kind]}, {})
    except ma.ValidationError as exc:
        flash_error(ValidationFailed("Check the import.", exc.messages))
        return redirect(url_for("catalog_pages.index") + "#import-remote")
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("catalog_pages.index") + "#import-remote")
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


def _remote_source() -> tuple[str, dict[str, Any]]:
    """The import source the form describes: a mirror (Hub or S3) or a registry."""
    chosen, location = request.form.get("from", ""), request.form.get("location", "").strip()
    version = request.form.get("version", "").strip()
    kind, _, number = chosen.partition("-")
    if not number.isdigit() or not location:
        raise ValidationFailed("Choose where to import from and what.", {"from": ["required"]})
    if kind == "registry":
        return "registry", {"registry_id": int(number), "repository": location,
                            "reference": version or "latest"}  # fmt: skip
    mirror = sources.get_source(int(number))
    if mirror.kind == "s3":
        return "s3", {"source_id": mirror.id, "bucket": location, "prefix": version}
    return "huggingface", {"source_id": mirror.id, "repository": location,
                           "revision": version or "main"}  # fmt: skip


def _registries() -> list[Any]:
    from portal.registry.service import list_registries

    return list_registries()


@bp.post("/models")
@page_role("operator")
def create_model() -> Any:
    try:
        model = service.create_model(form_model())
    except SpectrError as exc:
        flash_error(exc)
        return catalog_page(refused="add-model")
    flash(f"Model {model.name} added.")
    return redirect(url_for("catalog_pages.model", model_id=model.id))


@bp.get("/models/<id:model_id>")
@page_role("viewer")
def model(model_id: int) -> Any:
    from portal.hosts.service import ensure_local_host, hosts_query

    ensure_local_host()  # the Spectr node is always a host to deploy to
    entry = service.get_model(model_id)
    runtime_id = request.args.get("runtime_id", type=int)
    context = request.args.get("context_length", type=int)
    project_ids = visible_project_ids()  # where it is cached or could go: hosts you can see
    placement = service.placement(model_id, runtime_id, context, project_ids=project_ids)
    revisions = artifacts.revisions(entry)
    return render_template(
        "catalog/model.html",
        model=entry,
        revisions=revisions,
        revision=revisions[0] if revisions else None,
        holders=artifacts.holders(entry, project_ids),
        runtimes=service.list_runtimes(),
        runtime_id=runtime_id,
        context_length=context or entry.context_length,
        placement=placement,
        hosts=list(db.session.scalars(hosts_query(project_ids=project_ids))),
        quantizations=QUANTIZATIONS,
        formats=FORMATS,
        source_kinds=SOURCE_KINDS,
    )


@bp.post("/models/<id:model_id>/distribute")
@page_role("operator")
def distribute_model(model_id: int) -> Any:
    host_ids = request.form.getlist("host_ids", type=int)
    if not host_ids:
        flash("Choose at least one host.", "error")
        return redirect(url_for("catalog_pages.model", model_id=model_id) + "#distribute-model")
    for host_id in host_ids:
        visible_host(host_id, "operator")
    try:
        operation = artifacts.distribute(service.get_model(model_id), host_ids)
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("catalog_pages.model", model_id=model_id) + "#distribute-model")
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


@bp.post("/models/<id:model_id>/hosts/<id:host_id>/remove")
@page_role("operator")
def remove_model_from_host(model_id: int, host_id: int) -> Any:
    host = visible_host(host_id, "operator")
    try:
        operation = artifacts.remove_from_host(
            service.get_model(model_id), host, request.form.get("revision", type=int)
        )
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("catalog_pages.model", model_id=model_id) + "#hosts")
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


@bp.post("/models/<id:model_id>/edit")
@page_role("operator")
def edit_model(model_id: int) -> Any:
    try:
        service.update_model(model_id, form_model())
        flash("Model saved.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("catalog_pages.model", model_id=model_id))


@bp.post("/models/<id:model_id>/delete")
@page_role("operator")
def delete_model(model_id: int) -> Any:
    service.delete_model(model_id)
    flash("Model deleted.")
    return redirect(url_for("catalog_pages.index"))


@bp.post("/models/<id:model_id>/deploy")
@page_project_role("operator")
def deploy_model(model_id: int) -> Any:
    from portal.apps.model_deploy import deploy_model as deploy
    from portal.apps.schemas import DeployModelSchema

    form = request.form
    raw: dict[str, Any] = {
        k: v
        for k, v in form.items()
        if k in ("name", "runtime_id", "host_id", "host_port", "context_length") and v
    }
    raw["gpus"] = [int(i) for i in form.getlist("gpus") if i.isdigit()]
    try:
        body = DeployModelSchema().load(raw)
        if body.get("host_id"):  # the application goes to the host's project: an operator there
            visible_host(body["host_id"], "operator")
        app = deploy(model_id, body)
    except ma.ValidationError as exc:
        flash_error(ValidationFailed("Some fields are invalid.", exc.normalized_messages()))
    except SpectrError as exc:
        flash_error(exc)
    else:
        flash(f"Deploying {app.name}.")
        return redirect(url_for("apps_pages.detail", app_id=app.id))
    return redirect(
        url_for("catalog_pages.model", model_id=model_id, runtime_id=form.get("runtime_id"))
    )


# The images, runtimes and seed pages register their routes on this blueprint.
from portal.catalog import entry_pages  # noqa: E402, F401
