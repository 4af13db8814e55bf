"""Pages of the gateway: routes, models, keys and a usage chart."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import marshmallow as ma
from flask import Blueprint, flash, redirect, render_template, request, url_for

from portal.core.errors import Forbidden, SpectrError, ValidationFailed
from portal.core.security import require_principal
from portal.core.timeutil import utcnow
from portal.monitoring.discovery import proxy_stale_seconds, recent_proxies
from portal.projects.access import (
    checked,
    project_clause,
    projects_with,
    target_project,
    visible_project_ids,
)
from portal.proxy import service
from portal.proxy.schemas import GatewayKeySchema, RouteSchema, RouteUpdateSchema
from portal.proxy.usage import usage_aggregates
from portal.web.auth import page_project_role, page_role
from portal.web.forms import NO_STORE, flash_error, keep_secret, take_secret

bp = Blueprint("proxy_pages", __name__, url_prefix="/gateway")


@bp.get("")
@page_role("viewer")
def index() -> Any:
    daily = usage_aggregates("day", since=utcnow() - timedelta(days=14), within=project_clause)
    day_ago = utcnow() - timedelta(days=1)
    return render_template(
        "proxy/index.html",
        routes=service.list_routes(visible_project_ids()),
        models=service.list_models(project_clause),
        keys=service.list_keys(
            require_principal(), visible_project_ids(), visible_project_ids("admin")
        ),
        operator_projects=projects_with("operator"),
        admin_projects=projects_with("admin"),
        daily=daily,
        per_model=usage_aggregates("model", since=day_ago, within=project_clause),
        chart=bar_chart(daily),
        proxies=recent_proxies(),
        proxy_stale_s=int(proxy_stale_seconds()),
    )


@bp.post("/routes")
@page_project_role("operator")
def create_route() -> Any:
    body = _route_form()
    try:
        project = target_project(request.form.get("project") or None, "operator")
        service.create_route({**_load(RouteSchema(), body), "project_id": project.id})
        flash(f"Route {body['name']} created.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("proxy_pages.index"))


@bp.post("/routes/<id:route_id>")
@page_project_role("operator")
def update_route(route_id: int) -> Any:
    route = _route(route_id)
    body = _route_form()
    try:
        service.update_route(route, _load(RouteUpdateSchema(), body))
        flash(f"Route {route.name} saved.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("proxy_pages.index"))


@bp.post("/routes/<id:route_id>/delete")
@page_project_role("operator")
def delete_route(route_id: int) -> Any:
    route = _route(route_id)
    name = route.name
    service.delete_route(route)
    flash(f"Route {name} deleted.")
    return redirect(url_for("proxy_pages.index"))


def _route(route_id: int) -> Any:
    """The route, if the caller is an operator in its project; 404 like a missing one."""
    return checked(service.get_route(route_id), "operator", f"No route with id {route_id}.")


def _route_form() -> dict[str, Any]:
    """The route form's fields as the API's body (lists from comma-separated text)."""
    form = request.form
    body: dict[str, Any] = {
        "name": form.get("name", ""),
        "hosts": [h.strip() for h in form.get("hosts", "*").split(",") if h.strip()] or ["*"],
        "path_prefix": form.get("path_prefix") or "/",
        "upstreams": [u.strip() for u in form.get("upstreams", "").split(",") if u.strip()],
    }
    if form.get("timeout_s"):
        body["timeout_s"] = form["timeout_s"]
    return body


@bp.post("/keys")
@page_project_role("operator")
def create_key() -> Any:
    form = request.form
    body = {
        "name": form.get("name", ""),
        "models": [m.strip() for m in form.get("models", "*").split(",") if m.strip()] or ["*"],
        "rpm": form.get("rpm", type=int),
        "tpm": form.get("tpm", type=int),
        "expires_in_days": form.get("expires_in_days", type=int),
    }
    try:
        project = target_project(form.get("project") or None, "operator")
        fields = {**_load(GatewayKeySchema(), body), "project_id": project.id}
        _, secret = service.create_key(require_principal(), fields)
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("proxy_pages.index"))
    # Post/redirect/get: reloading the page that shows the key makes no second key.
    keep_secret("gateway-key", name=body["name"], secret=secret)
    return redirect(url_for("proxy_pages.key_created"))


@bp.get("/keys/created")
@page_project_role("operator")
def key_created() -> Any:
    created = take_secret("gateway-key")
    if created is None:
        flash("A new key is shown once, right after it is made; make another if it was lost.")
        return redirect(url_for("proxy_pages.index"))
    return render_template("proxy/key_created.html", **created), 200, NO_STORE


@bp.post("/keys/<id:key_id>/revoke")
@page_project_role("operator")
def revoke_key(key_id: int) -> Any:
    key = checked(service.get_key(key_id), "operator", f"No gateway key with id {key_id}.")
    principal = require_principal()
    if key.user_id != principal.user_id and not principal.has_role("admin"):
        raise Forbidden("Only the key's owner or an admin can revoke it.")
    service.revoke_key(key)
    flash("Key revoked; proxies refuse it within a second.")
    return redirect(url_for("proxy_pages.index"))


def _load(schema: ma.Schema, body: dict) -> dict:
    try:
        return schema.load(body)
    except ma.ValidationError as exc:
        raise ValidationFailed("Invalid input.", exc.messages) from exc


def bar_chart(rows: list[dict[str, Any]], width: int = 640, height: int = 160) -> dict[str, Any]:
    """Bars of total tokens per group, laid out for an inline SVG (no chart library needed)."""
    peak = max((row["total_tokens"] or 0 for row in rows), default=0) or 1
    step = width / max(len(rows), 1)
    bars = [
        {
            "x": round(i * step + 2, 1),
            "width": round(max(step - 4, 1), 1),
            "height": round((row["total_tokens"] or 0) / peak * (height - 20), 1),
            "label": row["group"],
            "value": row["total_tokens"] or 0,
        }
        for i, row in enumerate(rows)
    ]
    for bar in bars:
        bar["y"] = round(height - 16 - bar["height"], 1)
    return {"width": width, "height": height, "bars": bars}
