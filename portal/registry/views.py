"""Pages of the registry: registries, Spectr's registry, repositories, tags and a tag's manifest."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.core.errors import SpectrError
from portal.registry import service
from portal.web.auth import page_role

bp = Blueprint("registry_pages", __name__, url_prefix="/registry")
PAGE_SIZE = 50


@bp.get("")
@page_role("viewer")
def index() -> Any:
    return render_template(
        "registry/index.html",
        registries=service.list_registries(),
        spectr=service.spectr_registry(),
    )


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
        flash(exc.message, "error")
    return redirect(url_for("registry_pages.tags", registry_id=registry_id, repository=repository))


def _fetch(action: Any) -> tuple[Any, str | None]:
    try:
        return action(), None
    except SpectrError as exc:
        return None, exc.message
