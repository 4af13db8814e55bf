"""Pages that change an application: edit it (a new revision from a prefilled form, or from
the compose editor), duplicate it, and check compose text while it is typed."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.apps import editing, service
from portal.apps.compose_check import check_compose_text
from portal.apps.form_fields import key_value_lines, port_entries
from portal.apps.models import COMPOSE, Application
from portal.apps.schemas import DuplicateBodySchema
from portal.apps.spec import RESTART_POLICIES, AppInputSchema
from portal.core.command_line import split_command
from portal.core.errors import SpectrError, ValidationFailed
from portal.extensions import db
from portal.hosts.service import deployable_host, get_host
from portal.web.auth import page_project_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("app_edit_pages", __name__, url_prefix="/apps")


@bp.get("/<id:app_id>/edit")
@page_project_role("operator")
def edit(app_id: int) -> Any:
    app = service.visible_app(app_id, "operator")
    return _edit_page(app, editing.form_values(app), 200)


def _edit_page(app: Application, values: Any, status: int) -> Any:
    secret_keys = editing.form_values(app)["secret_keys"]
    html = render_template(
        "apps/edit.html",
        app=app,
        host=get_host(app.host_id),
        values=values,
        secret_keys=secret_keys,
        restart_policies=RESTART_POLICIES,
        check=check_compose_text(values["compose"]) if app.kind == COMPOSE else None,
    )
    return html, status


@bp.post("/<id:app_id>/edit")
@page_project_role("operator")
def save(app_id: int) -> Any:
    app = service.visible_app(app_id, "operator")
    deployed_before = app.deployed_revision or app.latest_revision
    try:
        service.add_revision(app, {**_form_revision(app), "kind": app.kind})
    except SpectrError as exc:
        db.session.rollback()
        flash_error(exc)
        values = {**request.form.to_dict(), "deploy": request.form.get("deploy", ""),
                  "gpus": ",".join(request.form.getlist("gpus"))}  # fmt: skip
        return _edit_page(service.visible_app(app_id, "operator"), values, 422)
    deploying = bool(request.form.get("deploy"))
    flash(f"Revision {app.latest_revision} saved" + ("; deploying it." if deploying else
          ". It is not deployed yet: deploy it below when ready."))  # fmt: skip
    target = url_for(
        "apps_pages.detail", app_id=app.id, to=app.latest_revision, **{"from": deployed_before}
    )
    return redirect(target + "#revision-diff")


def _form_revision(app: Application) -> dict[str, Any]:
    """The form as AppInputSchema's body: the spec, secrets kept, replaced or removed."""
    form = request.form
    replaced = {key[len("secret__"):]: value for key, value in form.items()
                if key.startswith("secret__") and value}  # fmt: skip
    raw: dict[str, Any] = {
        "note": form.get("note", ""),
        "deploy": bool(form.get("deploy")),
        "secret_env": {**replaced, **key_value_lines(form.get("secret_env", ""), "secret_env")},
        "remove_secrets": form.getlist("remove_secret"),
    }
    if app.kind == COMPOSE:
        raw["compose"] = _checked_compose(form.get("compose", ""))
    else:
        raw["container"] = {**editing.carried_over(app), **_container_fields()}
    return load_form(AppInputSchema(), raw)


def _checked_compose(text: str) -> str:
    """The editor's text when the check the editor showed passes (Compose's own included)."""
    check = check_compose_text(text)
    if not check["valid"]:
        lines = [f"line {p['line']}: {p['message']}" for p in check["problems"]]
        raise ValidationFailed(f"The compose file has problems: {lines[0]}", {"compose": lines})
    return text


def _container_fields() -> dict[str, Any]:
    form = request.form
    return {
        "image": form.get("image", "").strip(),
        "command": split_command(form.get("command", "")),
        "env": key_value_lines(form.get("env", ""), "env"),
        "ports": port_entries(form.get("ports", "")),
        "volumes": [line.strip() for line in form.get("volumes", "").splitlines() if line.strip()],
        "gpus": _gpus(",".join(form.getlist("gpus"))),
        "restart_policy": form.get("restart_policy", "unless-stopped"),
        "labels": key_value_lines(form.get("labels", ""), "labels"),
    }


def _gpus(text: str) -> list[int]:
    words = [word.strip() for word in text.replace(" ", ",").split(",") if word.strip()]
    if not all(word.isdigit() for word in words):
        raise ValidationFailed(
            "GPUs are indexes such as 0,1.", {"gpus": ["comma-separated GPU indexes"]}
        )
    return [int(word) for word in words]


@bp.post("/compose-check")
@page_project_role("operator")
def compose_check() -> Any:
    """The editor's problems list, checked on the server as a deploy would check it."""
    return render_template("apps/_compose_check.html", check=check_compose_text(
        request.form.get("compose", "")))  # fmt: skip


@bp.post("/<id:app_id>/duplicate")
@page_project_role("operator")
def duplicate(app_id: int) -> Any:
    source = service.visible_app(app_id, "operator")
    try:
        body = load_form(DuplicateBodySchema(), {
            "name": request.form.get("name", "").strip(),
            "host_id": request.form.get("host_id") or source.host_id,
            "deploy": bool(request.form.get("deploy")),
        })  # fmt: skip
        deployable_host(body["host_id"], prefer=source.project_id)  # one of the caller's
        copy = editing.duplicate_app(source, body["name"], body["host_id"], body["deploy"])
    except SpectrError as exc:
        db.session.rollback()
        flash_error(exc)
        return redirect(url_for("apps_pages.detail", app_id=app_id) + "#duplicate")
    flash(f"Application {copy.name} created from {source.name}"
          + ("; deploying it." if body["deploy"] else ". Deploy it when ready."))  # fmt: skip
    return redirect(url_for("apps_pages.detail", app_id=copy.id))
