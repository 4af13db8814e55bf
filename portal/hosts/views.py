"""Pages of hosts: the list with filters and bulk actions, add / import / edit, one host."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from portal.core.errors import SpectrError, ValidationFailed
from portal.core.live_parts import live_parts_events, rows_and_parts
from portal.core.operations import service as operations
from portal.core.security import current_principal
from portal.core.sse import heartbeat_seconds, sse_response
from portal.extensions import db
from portal.hosts import service
from portal.hosts.gpu_charts import (
    WINDOWS_MINUTES,
    host_gpu_charts,
    newest_sample_at,
    window_minutes,
)
from portal.hosts.models import HOST_STATUSES, Host
from portal.hosts.schemas import BECOME_METHODS, HostPatchSchema, HostWriteSchema
from portal.projects.access import projects_with, target_project, visible_project_ids
from portal.projects.models import Project
from portal.projects.sharing import seen_through_share, shares_of
from portal.web.auth import page_project_role, page_role
from portal.web.forms import flash_error
from portal.web.listing import Listing, SortColumn, list_page

bp = Blueprint("hosts_pages", __name__, url_prefix="/hosts")
PAGE_SIZE = 50
FORM_FIELDS = ("name", "address", "ssh_port", "ssh_user", "become_method", "agent_port",
               "ssh_private_key", "ssh_password")  # fmt: skip
# Columns of the hosts table a person can sort by; each is a plain column of hosts (indexed or
# small), so ORDER BY ... LIMIT stays cheap at fleet size.
HOST_SORTS = {
    "name": SortColumn(Host.name),
    "address": SortColumn(Host.address),
    "status": SortColumn(Host.status),
    "last_seen": SortColumn(Host.last_seen_at, descending_first=True),
}


@bp.app_context_processor
def _sharing() -> dict[str, Any]:
    """Rows of hosts seen through a share say so."""
    return {"seen_through_share": seen_through_share}


@bp.get("")
@page_role("viewer")
def index() -> Any:
    service.ensure_local_host()  # the Spectr node is a host from the first visit, like on Apps
    listing = _host_listing()
    return render_template(
        "hosts/index.html",
        listing=listing,
        hosts=listing.items,
        filters=listing.filters,
        statuses=HOST_STATUSES,
    )


def _host_listing() -> Listing:
    """The page of hosts the request asks for: filters, search, sort and page."""
    filters = {k: v for k in ("status", "label", "gpu_model") if (v := request.args.get(k))}
    if filters.get("status") not in (None, *HOST_STATUSES):
        filters.pop("status")
    return list_page(
        service.hosts_query(**filters, project_ids=visible_project_ids()),
        sortable=HOST_SORTS,
        default_sort="name",
        tiebreak=Host.id,
        searchable=(Host.name, Host.address),
        filters=filters,
        page_size=PAGE_SIZE,
    )


@bp.get("/live")
@page_role("viewer")
def live() -> Any:
    """The list's rows (keyed by host id, in the page's order: a host added or removed comes and
    goes) and their status and last-seen cells, sent again whenever one changes."""

    def payload() -> dict[str, Any]:
        listing = _host_listing()
        parts, rows = {"hosts-total": f"{listing.total:,} hosts"}, []
        for host in listing.items:
            parts[f"host-{host.id}-status"] = render_template("hosts/_status_cell.html", host=host)
            parts[f"host-{host.id}-seen"] = render_template("hosts/_seen_cell.html", host=host)
            rows.append([str(host.id), render_template("hosts/_host_row.html", host=host)])
        return {"parts": parts, "rows": {"host-rows": rows}}

    events = live_parts_events(payload, heartbeat_seconds(), fingerprint=rows_and_parts)
    return sse_response(events)


@bp.route("/new", methods=["GET", "POST"])
@page_project_role("operator")
def new() -> Any:
    projects = projects_with("operator")
    if request.method == "GET":
        return render_template("hosts/form.html", host=None, values={}, methods=BECOME_METHODS,
                               projects=projects)  # fmt: skip
    try:
        project = target_project(request.form.get("project") or None, "operator")
        values = {**_form_values(HostWriteSchema()), "project_id": project.id}
        host = service.create_host(values)
    except SpectrError as exc:
        flash_error(exc)
        page = render_template(
            "hosts/form.html", host=None, values=request.form, methods=BECOME_METHODS,
            projects=projects,
        )  # fmt: skip
        return page, 422
    flash(f"Host {host.name} added. Bootstrap it to install Docker and the agent.")
    return redirect(url_for("hosts_pages.detail", host_id=host.id))


@bp.route("/<id:host_id>/edit", methods=["GET", "POST"])
@page_project_role("operator")
def edit(host_id: int) -> Any:
    host = service.visible_host(host_id, "operator")
    if request.method == "GET":
        return render_template("hosts/form.html", host=host, values={}, methods=BECOME_METHODS)
    try:
        service.update_host(host, _form_values(HostPatchSchema(partial=True)))
    except SpectrError as exc:
        db.session.rollback()
        flash_error(exc)
        page = render_template(
            "hosts/form.html", host=host, values=request.form, methods=BECOME_METHODS
        )
        return page, 422
    flash(f"Host {host.name} saved.")
    return redirect(url_for("hosts_pages.detail", host_id=host.id))


@bp.post("/import")
@page_project_role("operator")
def import_hosts() -> Any:
    upload = request.files.get("file")
    content = (
        upload.read().decode("utf-8", "replace") if upload else request.form.get("content", "")
    )
    defaults = {
        k: v for k in ("ssh_user", "ssh_private_key", "ssh_password") if (v := request.form.get(k))
    }
    file_format = request.form.get("format") or None
    if file_format is None and upload is not None:
        from portal.hosts.inventory_import import guess_format

        file_format = guess_format(upload.filename or "", content)
    try:
        project = target_project(request.form.get("project") or None, "operator")
        hosts = service.import_hosts(content, file_format, defaults, project.id)
        flash(f"Added {len(hosts)} host(s).")
    except SpectrError as exc:
        flash_error(exc)
    return redirect(url_for("hosts_pages.index"))


@bp.get("/<id:host_id>")
@page_role("viewer")
def detail(host_id: int) -> Any:
    host = service.visible_host(host_id, "viewer", shared=True)
    shared = seen_through_share(host.project_id)
    operation, lines = None, []
    if host.last_operation_id and not shared:
        try:
            operation = operations.get_operation(host.last_operation_id)
            lines = operations.read_log(operation.id)
        except SpectrError:
            operation = None
    from portal.artifacts.service import host_models

    minutes = window_minutes(request.args.get("minutes"))
    return render_template(
        "hosts/detail.html", host=host, op=operation, lines=lines, models=host_models(host),
        shared=shared, shares=[] if shared else shares_of(host.id),
        owner=db.session.get(Project, host.project_id), move_targets=[p for p in projects_with("admin") if p.id != host.project_id],
        gpu_charts=host_gpu_charts(host, minutes), minutes=minutes, windows=WINDOWS_MINUTES,
    )  # fmt: skip


@bp.get("/<id:host_id>/gpu-charts/live")
@page_role("viewer")
def gpu_charts_live(host_id: int) -> Any:
    """The host page's GPU charts, sent again each time a sweep adds samples."""
    service.visible_host(host_id, "viewer", shared=True)
    minutes = window_minutes(request.args.get("minutes"))
    sent: dict[str, Any] = {"newest": "never", "payload": None}

    def payload() -> dict[str, Any] | None:
        host = db.session.get(Host, host_id)
        if host is None:
            return None
        newest = newest_sample_at(host_id)
        if newest != sent["newest"]:  # one cheap query a second; charts drawn on change only
            html = render_template("hosts/_gpu_charts.html", host=host,
                                   gpu_charts=host_gpu_charts(host, minutes), minutes=minutes)  # fmt: skip
            sent.update(newest=newest, payload={"parts": {"gpu-charts": html}})
        return sent["payload"]

    return sse_response(
        live_parts_events(payload, heartbeat_seconds(), gone="The host was deleted.")
    )


@bp.post("/<id:host_id>/bootstrap")
@page_project_role("operator")
def bootstrap(host_id: int) -> Any:
    host = service.visible_host(host_id, "operator")
    try:
        service.require_idle(host)
        _start("bootstrap_hosts", {"host_ids": [host.id], "forks": 1}, f"host:{host.id}")
    except SpectrError as exc:
        flash(exc.message, "error")
    return redirect(url_for("hosts_pages.detail", host_id=host.id))


@bp.post("/bootstrap")
@page_project_role("operator")
def bootstrap_many() -> Any:
    host_ids = [int(i) for i in request.form.getlist("host_id") if i.isdigit()]
    if not host_ids:
        flash("Select at least one host to bootstrap.", "error")
        return redirect(url_for("hosts_pages.index"))
    try:
        for host_id in host_ids:
            service.require_idle(service.visible_host(host_id, "operator"))
    except SpectrError as exc:
        flash(exc.message, "error")
        return redirect(url_for("hosts_pages.index"))
    forks = min(max(request.form.get("forks", 10, type=int) or 10, 1), 50)
    operation = _start("bootstrap_hosts", {"host_ids": host_ids, "forks": forks}, "hosts")
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


@bp.post("/<id:host_id>/forget-host-key")
@page_project_role("operator")
def forget_host_key(host_id: int) -> Any:
    host = service.visible_host(host_id, "operator")
    service.forget_host_key(host)
    flash("Recorded host key forgotten; the next bootstrap records the key it meets.")
    return redirect(url_for("hosts_pages.detail", host_id=host.id))


@bp.post("/<id:host_id>/delete")
@page_project_role("operator")
def delete(host_id: int) -> Any:
    host = service.visible_host(host_id, "operator")
    if request.form.get("cleanup") == "on":
        operation = _start("delete_host", {"host_id": host.id}, f"host:{host.id}")
        return redirect(url_for("operations_pages.detail", operation_id=operation.id))
    name = host.name
    service.delete_host(host)
    flash(f"Host {name} deleted.")
    return redirect(url_for("hosts_pages.index"))


def _start(kind: str, params: dict, target: str) -> Any:
    operation, _ = operations.create_operation(
        kind,
        params,
        target=target,
        requested_by=current_principal(),
        request_id=g.get("request_id"),
    )
    if operation.state != "succeeded":  # an inline delete may have removed the host already
        service.assign_operation(params.get("host_ids") or [params["host_id"]], operation.id)
    return operation


def _form_values(schema: Any) -> dict[str, Any]:
    """Read the form through the API's schema, so pages and API validate the same way."""
    raw: dict[str, Any] = {}
    for name in FORM_FIELDS:
        value = request.form.get(name, "")
        if value.strip():
            raw[name] = value if name == "ssh_private_key" else value.strip()
    raw["labels"] = {}
    for part in request.form.get("labels", "").replace(";", ",").split(","):
        key, _, value = part.partition("=")
        if key.strip():
            raw["labels"][key.strip()] = value.strip()
    errors = schema.validate(raw)
    if errors:
        raise ValidationFailed("Invalid input in: " + ", ".join(sorted(errors)) + ".", errors)
    return schema.load(raw)
