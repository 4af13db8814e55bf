"""Pages of a host's Docker resources: containers (list, bulk actions, one container with live
stats), images, volumes and networks (remove, prune). The services audit every change."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from portal.core.errors import SpectrError
from portal.core.live_parts import live_parts_events, rows_and_parts
from portal.core.sse import heartbeat_seconds, sse_response
from portal.hosts import container_detail, host_objects, resources
from portal.hosts.models import Host
from portal.hosts.resources_api import viewer_host
from portal.hosts.service import visible_host
from portal.projects.access import can
from portal.web.auth import page_project_role, page_role
from portal.web.display import when
from portal.web.forms import flash_error

bp = Blueprint("host_resources_pages", __name__, url_prefix="/hosts")
_ENGINE_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")
MANAGED_CHOICES = {"yes": True, "no": False}


@bp.app_template_filter("engine_time")
def engine_time(value: str | None) -> Markup:
    """The engine's ISO times (nanoseconds, Z) shown like Spectr's own; its zero time as —."""
    match = _ENGINE_TIME.match(value or "")
    if not match or match.group(1).startswith("0001"):
        return when(None)
    return when(datetime.fromisoformat(match.group(1)))


def _render(template: str, host: Host, load: Callable[[], Any], **context: Any) -> Any:
    """A resource page; an unreachable engine (or a host without agent) is said on the page."""
    try:
        items, error = load(), None
    except SpectrError as exc:
        items, error = [], exc.message
    return render_template(template, host=host, items=items, error=error, **context)


def _container_filters() -> tuple[dict[str, Any], dict[str, Any]]:
    """The list's filters from the query string: (for listing, for the page and its links)."""
    state = request.args.get("state") or None
    state = state if state in resources.CONTAINER_STATES else None
    search = (request.args.get("q") or "").strip()[:200] or None
    managed = MANAGED_CHOICES.get(request.args.get("managed", ""))
    shown = {"state": state, "q": search, "managed": request.args.get("managed", "")}
    return {"state": state, "search": search, "managed": managed}, shown


@bp.get("/<id:host_id>/containers")
@page_role("viewer")
def containers(host_id: int) -> Any:
    host = visible_host(host_id, "viewer")
    listing, filters = _container_filters()
    return _render(
        "hosts/containers.html",
        host,
        lambda: [
            container_detail.container_row(host, info, viewer_host())
            for info in resources.list_containers(host, **listing)
        ],
        filters=filters,
        live_filters={key: value for key, value in filters.items() if value},
        states=resources.CONTAINER_STATES,
        managed_label=resources.MANAGED_LABEL,
        operator=can(host.project_id, "operator"),
    )


@bp.get("/<id:host_id>/containers/live")
@page_role("viewer")
def containers_live(host_id: int) -> Any:
    """The list's rows (keyed by container id, in the list's order) and its count, sent again
    whenever a container appears, goes or changes on the engine."""
    host = visible_host(host_id, "viewer")
    listing, filters = _container_filters()
    seen_from, operator = viewer_host(), can(host.project_id, "operator")
    last: dict[str, Any] = {"parts": {}}

    def payload() -> dict[str, Any]:
        try:
            items = [
                container_detail.container_row(host, info, seen_from)
                for info in resources.list_containers(host, **listing)
            ]
        except SpectrError:
            return last  # the engine did not answer this time: the page keeps what it shows
        context = {"host": host, "filters": filters, "operator": operator, "items": items}
        rows = [
            [c["id"], render_template("hosts/_container_row.html", c=c, **context)] for c in items
        ]
        count = render_template("hosts/_containers_count.html", **context)
        last.update(parts={"containers-count": count}, rows={"container-rows": rows})
        return dict(last)

    events = live_parts_events(payload, heartbeat_seconds(), poll_s=2.0, fingerprint=rows_and_parts)
    return sse_response(events)


@bp.post("/<id:host_id>/containers/actions")
@page_project_role("operator")
def container_actions(host_id: int) -> Any:
    host = visible_host(host_id, "operator")
    action = request.form.get("action", "")
    chosen = [value for value in request.form.getlist("container_id") if value][:100]
    back = request.form.get("next") or url_for(".containers", host_id=host.id)
    if action not in resources.CONTAINER_ACTIONS or not chosen:
        flash("Choose one or more containers and an action.", "error")
        return redirect(_local(back, host))
    try:
        results = resources.act_on_containers(host, action, chosen, force=action == "remove")
    except SpectrError as exc:
        flash_error(exc)
        return redirect(_local(back, host))
    done = [r["name"] for r in results if r["ok"]]
    failed = [f"{r['id']}: {r['error']}" for r in results if not r["ok"]]
    if done:
        flash(f"{_past(action)} {len(done)} container(s): {', '.join(done)}.")
    if failed:
        flash("Not done:\n" + "\n".join(failed), "error")
    return redirect(_local(back, host))


def _past(action: str) -> str:
    return {"start": "Started", "stop": "Stopped", "restart": "Restarted"}.get(action, "Removed")


def _local(target: str, host: Host) -> str:
    """Only a path of this site is followed after an action (never another site's address)."""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for(".containers", host_id=host.id)


@bp.get("/<id:host_id>/containers/<string(maxlength=128):container_id>")
@page_role("viewer")
def container(host_id: int, container_id: str) -> Any:
    host = visible_host(host_id, "viewer")
    detail = container_detail.container_detail(host, container_id, viewer_host())
    return render_template("hosts/container.html", host=host, c=detail)


@bp.get("/<id:host_id>/images")
@page_role("viewer")
def images(host_id: int) -> Any:
    host = visible_host(host_id, "viewer")
    return _render("hosts/images.html", host, lambda: host_objects.list_images(host))


@bp.get("/<id:host_id>/volumes")
@page_role("viewer")
def volumes(host_id: int) -> Any:
    host = visible_host(host_id, "viewer")
    return _render("hosts/volumes.html", host, lambda: host_objects.list_volumes(host))


@bp.get("/<id:host_id>/networks")
@page_role("viewer")
def networks(host_id: int) -> Any:
    host = visible_host(host_id, "viewer")
    return _render("hosts/networks.html", host, lambda: host_objects.list_networks(host))


REMOVALS: dict[str, tuple[Callable[[Host, str], Any], str]] = {
    "images": (host_objects.remove_image, "Image"),
    "volumes": (host_objects.remove_volume, "Volume"),
    "networks": (host_objects.remove_network, "Network"),
}


@bp.post("/<id:host_id>/<any(images, volumes, networks):kind>/remove")
@page_project_role("operator")
def remove(host_id: int, kind: str) -> Any:
    host = visible_host(host_id, "operator")
    name = request.form.get("name", "").strip()
    remover, noun = REMOVALS[kind]
    try:
        if not name:
            raise SpectrError(f"Choose the {noun.lower()} to remove.")
        remover(host, name)
        flash(f"{noun} {name} removed.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for(f".{kind}", host_id=host.id))


@bp.post("/<id:host_id>/<any(images, volumes):kind>/prune")
@page_project_role("operator")
def prune(host_id: int, kind: str) -> Any:
    host = visible_host(host_id, "operator")
    try:
        result = host_objects.prune(host, kind, request.form.get("confirm"))
        freed, noun = result["space_reclaimed"], host_objects.PRUNABLE[kind]
        flash(f"Removed {len(result['deleted'])} {noun}, {freed / 2**20:.1f} MiB freed.")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for(f".{kind}", host_id=host.id))
