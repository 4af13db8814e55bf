"""Catalog pages that add and change runtimes and images, and add the shipped entries."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from portal.catalog import seeding, service
from portal.catalog.schemas import RuntimeSchema
from portal.catalog.views import bp, catalog_page
from portal.core.errors import SpectrError, ValidationFailed
from portal.web.auth import page_role
from portal.web.forms import flash_error, load_form

RUNTIME_TEXT_FIELDS = ("name", "kind", "image", "port", "health_path", "openai_base_path",
                       "overhead_mib", "description")  # fmt: skip


@bp.post("/images")
@page_role("operator")
def create_image() -> Any:
    fields = {
        "reference": request.form.get("reference", "").strip(),
        "description": request.form.get("description", ""),
    }
    try:
        image = service.create_image(fields)
    except SpectrError as exc:
        flash_error(exc)
        return catalog_page(refused="add-image")  # the form keeps what was typed
    flash(f"Image {image.reference} added.")
    return redirect(url_for("catalog_pages.index") + "#images")


@bp.post("/images/sync")
@page_role("operator")
def sync_images() -> Any:
    from portal.core.operations.service import create_operation
    from portal.core.security import current_principal
    from portal.registry.service import get_registry

    repository = request.form.get("repository", "").strip()
    try:
        registry = get_registry(request.form.get("registry_id", type=int) or 0)
        if not repository:
            raise ValidationFailed("Name a repository to sync.", {"repository": ["required"]})
        operation, _ = create_operation(
            "catalog.sync_registry",
            {"registry_id": registry.id, "repository": repository},
            target=f"registry:{registry.id}",
            requested_by=current_principal(),
        )
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("catalog_pages.index") + "#images")
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


@bp.post("/images/<id:image_id>/delete")
@page_role("operator")
def delete_image(image_id: int) -> Any:
    service.delete_image(image_id)
    flash("Image removed from the catalog.")
    return redirect(url_for("catalog_pages.index") + "#images")


@bp.post("/runtimes")
@page_role("operator")
def create_runtime() -> Any:
    """Add a serving runtime of one's own (the API's schema reads the form)."""
    form = request.form
    raw: dict[str, Any] = {
        k: form[k].strip() for k in RUNTIME_TEXT_FIELDS if form.get(k, "").strip()
    }
    raw["command_template"] = _lines(form.get("command_template", ""))
    raw["requires_gpu"] = form.get("requires_gpu") == "on"
    raw["multi_gpu"] = form.get("multi_gpu") == "on"
    try:
        runtime = service.create_runtime(load_form(RuntimeSchema(), raw))
    except SpectrError as exc:
        flash_error(exc)
        return catalog_page(refused="add-runtime")
    flash(f"Runtime {runtime.name} added; models can be deployed with it.")
    return redirect(url_for("catalog_pages.index") + f"#runtime-{runtime.id}")


@bp.post("/runtimes/<id:runtime_id>/edit")
@page_role("operator")
def edit_runtime(runtime_id: int) -> Any:
    form = request.form
    fields: dict[str, Any] = {"image": form.get("image", "").strip()}
    fields["command_template"] = _lines(form.get("command_template", ""))
    try:
        fields["port"] = int(form.get("port", ""))
        fields["overhead_mib"] = int(form.get("overhead_mib", ""))
        service.update_runtime(runtime_id, fields)
        flash("Runtime saved.")
    except ValueError:
        flash("Port and overhead must be whole numbers.", "error")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("catalog_pages.index") + f"#runtime-{runtime_id}")


def _lines(text: str) -> list[str]:
    """One argument a line: a template needs no quoting, an argument may hold spaces."""
    return [line.strip() for line in text.splitlines() if line.strip()]


@bp.post("/seed")
@page_role("admin")
def seed() -> Any:
    added = seeding.seed_catalog()
    flash(
        f"Added {added['runtimes']} runtimes, {added['models']} models, {added['images']} images."
    )
    return redirect(url_for("catalog_pages.index"))
