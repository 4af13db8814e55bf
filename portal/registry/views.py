"""Pages of the registry: registries, Spectr's registry, repositories, tags and a tag's manifest."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from portal.core.errors import SpectrError
from portal.core.operations import service as operations
from portal.core.security import current_principal
from portal.extensions import db
from portal.registry import deploy, service
from portal.registry.models import SPECTR
from portal.registry.schemas import DeploySchema, MirrorSchema, RegistryWriteSchema
from portal.web.auth import page_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("registry_pages", __name__, url_prefix="/registry")
PAGE_SIZE = 50


@bp.get("")
@page_role("viewer")
def index() -> Any:
    from portal.hosts.service import ensure_local_host, hosts_query
    from portal.projects.access import visible_project_ids

    ensure_local_host()  # the Spectr node is always a host to deploy the registry on
    hosts = db.session.scalars(hosts_query(project_ids=visible_project_ids()))
    return render_template(
        "registry/index.html",
        registries=service.list_registries(),
        spectr=service.spectr_registry(),
        hosts=list(hosts),
    )


@bp.post("")
@page_role("operator")
def register() -> Any:
    try:
        registry = service.create_registry(_load(RegistryWriteSchema(), _form()))
        flash(f"Registry {registry.name} registered; test its connection.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("registry_pages.index"))


@bp.post("/deploy")
@page_role("admin")
def deploy_spectr_registry() -> Any:
    try:
        params = deploy.deploy_params(_load(DeploySchema(), _form()))
        return _started("deploy_registry", params, "registry:spectr")
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("registry_pages.index"))


@bp.post("/mirror")
@page_role("operator")
def mirror() -> Any:
    try:
        service.require_spectr_registry()
        return _started("mirror_image", _load(MirrorSchema(), _form()), "registry:spectr")
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("registry_pages.index"))


@bp.post("/<id:registry_id>/gc")
@page_role("operator")
def garbage_collect(registry_id: int) -> Any:
    registry = service.get_registry(registry_id)
    if registry.kind != SPECTR:
        flash("Only a registry Spectr deployed can be garbage-collected.", "error")
        return redirect(url_for("registry_pages.index"))
    return _started("registry_gc", {"registry_id": registry.id}, f"registry:{registry.id}")


@bp.post("/<id:registry_id>/check")
@page_role("operator")
def check(registry_id: int) -> Any:
    result = service.check_connection(service.get_registry(registry_id))
    flash(result["message"], "info" if result["ok"] else "error")
    return redirect(url_for("registry_pages.index"))


@bp.get("/<id:registry_id>")
@page_role("viewer")
def repositories(registry_id: int) -> Any:
    registry = service.get_registry(registry_id)
    last = request.args.get("last") or None
    page, error = _fetch(lambda: service.repositories(registry, PAGE_SIZE, last))
    return render_template("registry/repositories.html", registry=registry, page=page, error=error)


@bp.get("/<id:registry_id>/r/<path:repository>")
@page_role("viewer")
def tags(registry_id: int, repository: str) -> Any:
    registry = service.get_registry(registry_id)
    last = request.args.get("last") or None
    page, error = _fetch(lambda: service.tags(registry, repository, PAGE_SIZE, last))
    selected = request.args.get("tag")
    manifest, manifest_error = (None, None)
    if selected:
        manifest, manifest_error = _fetch(lambda: service.manifest(registry, repository, selected))
    return render_template(
        "registry/tags.html",
        registry=registry,
        repository=repository,
        page=page,
        error=error or manifest_error,
        manifest=manifest,
    )


@bp.post("/<id:registry_id>/r/<path:repository>/delete")
@page_role("operator")
def delete_tag(registry_id: int, repository: str) -> Any:
    registry = service.get_registry(registry_id)
    tag = request.form.get("tag", "")
    try:
        digest = service.delete_tag(registry, repository, tag)
        flash(f"Deleted {repository}:{tag} ({digest[:19]}).")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("registry_pages.tags", registry_id=registry_id, repository=repository))


def _fetch(action: Any) -> tuple[Any, str | None]:
    try:
        return action(), None
    except SpectrError as exc:
        return None, exc.message


def _form() -> dict[str, Any]:
    return {key: value.strip() for key, value in request.form.items()
            if key != "csrf_token" and value.strip()}  # fmt: skip


def _load(schema: ma.Schema, raw: dict[str, Any]) -> dict[str, Any]:
    """Read a form through the API's schema, so pages and API validate the same way."""
    return load_form(schema, raw)


def _started(kind: str, params: dict[str, Any], target: str) -> Any:
    operation, _ = operations.create_operation(
        kind, params, target=target, requested_by=current_principal(),
        request_id=g.get("request_id"),
    )  # fmt: skip
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))
