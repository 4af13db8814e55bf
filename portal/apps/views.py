"""Pages of applications: the list with status per host, a new application, an application
with its revisions and diffs, live logs and a command box, and adoption."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from portal.apps import adoption, relay, service
from portal.apps.form_fields import key_value_lines, port_entries
from portal.apps.lifecycle import apply_health_checks, refresh_status, seen_containers
from portal.apps.live_status import live_status_events
from portal.apps.models import Application
from portal.apps.spec import AppInputSchema
from portal.core.command_line import split_command
from portal.core.errors import SpectrError, ValidationFailed
from portal.core.live_parts import live_parts_events
from portal.core.operations import service as operations
from portal.core.operations.models import Operation
from portal.core.sse import heartbeat_seconds, sse_response
from portal.extensions import db
from portal.hosts.service import (
    deployable_host,
    ensure_local_host,
    get_host,
    host_choices,
    host_id_named,
    hosts_query,
    visible_host,
)
from portal.projects.access import can, visible_project_ids
from portal.projects.sharing import app_move_targets
from portal.web.auth import page_project_role, page_role
from portal.web.forms import flash_error, load_form

bp = Blueprint("apps_pages", __name__, url_prefix="/apps")
ACTIONS = ("start", "stop", "restart", "pull", "remove")
PAGE_SIZE = 50  # hosts per page, each with its applications
# Up to this many hosts the new-application form lists them all in a <select>; a larger fleet
# types the host's name, with suggestions (ten thousand <option>s took seconds to render).
HOST_SELECT_LIMIT = 200
# Which actions make sense in which status (the first word of it: "exited (1)" is exited).
ACTIONS_BY_STATUS = {
    "running": ("stop", "restart", "pull", "remove"),
    "unhealthy": ("stop", "restart", "pull", "remove"),
    "restarting": ("stop", "restart", "pull", "remove"),
    "exited": ("start", "pull", "remove"),
    "created": ("start", "pull", "remove"),
    "dead": ("start", "pull", "remove"),
    "paused": ("start", "stop", "pull", "remove"),
    "absent": ("pull", "remove"),
    "pending": ("pull",),
    "failed": ("pull", "remove"),  # a first deploy that failed may have left a container
    "removed": (),
}


def actions_for(status: str) -> tuple[str, ...]:
    """The actions that apply to an application in `status`; all of them when it is unknown."""
    return ACTIONS_BY_STATUS.get(status.split(" ")[0], ACTIONS)


def _form_app() -> dict[str, Any]:
    form = request.form
    raw: dict[str, Any] = {
        "name": form.get("name", ""),
        "kind": form.get("kind", "container"),
        "note": form.get("note", ""),
    }
    if form.get("host_id"):
        raw["host_id"] = form["host_id"]
    elif form.get("host_name"):  # a large fleet's form asks for the host by name
        raw["host_id"] = host_id_named(form["host_name"].strip())
    if raw["kind"] == "compose":
        raw["compose"] = form.get("compose", "")
    else:
        raw["container"] = {
            "image": form.get("image", "").strip(),
            "command": split_command(form.get("command", "")),
            "env": key_value_lines(form.get("env", ""), "env"),
            "ports": port_entries(form.get("ports", "")),
        }
    raw["secret_env"] = key_value_lines(form.get("secret_env", ""), "secret_env")
    return load_form(AppInputSchema(), raw)


def last_operation(app: Application) -> Operation | None:
    if not app.last_operation_id:
        return None
    try:
        return operations.get_operation(app.last_operation_id)
    except SpectrError:
        return None


def shown_status(app: Application, operation: Operation | None) -> tuple[str, str]:
    """The status a person should read: a first deploy that failed is "failed", not "pending"."""
    if app.status == "pending" and operation is not None and operation.state == "failed":
        return "failed", f"{operation.kind} failed: {operation.error or 'see its log'}"
    return app.status, app.status_detail or ""


@bp.get("")
@page_role("viewer")
def index() -> Any:
    return _index_page({}, 200)


def _index_page(values: Any, status: int) -> Any:
    ensure_local_host()  # the Spectr node is always a host to deploy to
    page = _page_number()
    hosts, apps, shown, total = _listed(page)
    html = render_template(
        "apps/index.html",
        choices=host_choices(project_ids=visible_project_ids("operator"))
        if (total or 0) <= HOST_SELECT_LIMIT
        else None,
        values=values,
        page=page,
        **_sections(hosts, apps, shown, max(1, -(-(total or 0) // PAGE_SIZE))),
    )
    return html, status


def _sections(
    hosts: list[Any], apps: list[Application], shown: dict[int, Any], pages: int
) -> dict[str, Any]:
    """What the list's sections (apps/_sections.html) are drawn from."""
    by_host = {host.id: [app for app in apps if app.host_id == host.id] for host in hosts}
    return {
        "hosts": hosts,
        "by_host": by_host,
        "busy_host_ids": [host_id for host_id, on_host in by_host.items() if on_host],
        "shown": shown,
        "containers": seen_containers(apps),
        "pages": pages,
    }


def _page_number() -> int:
    return min(max(request.args.get("page", 1, type=int), 1), 10**6)


def _listed(
    page: int, count: bool = True
) -> tuple[list[Any], list[Application], dict[int, Any], int]:
    """A page of hosts, their applications (status from the last sweep), the status each
    shows, and how many hosts there are in all (0 unless `count`: the live stream needs none)."""
    project_ids = visible_project_ids()
    query = hosts_query(project_ids=project_ids)
    total = 0
    if count:
        total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    hosts = list(db.session.scalars(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
    # A shared host lists the caller's projects' applications, not its owner's.
    on_hosts = service.apps_query(host_ids=[host.id for host in hosts], project_ids=project_ids)
    apps = list(db.session.scalars(on_hosts))
    apply_health_checks(apps)
    last = _last_operations(apps)
    shown = {app.id: shown_status(app, last.get(app.last_operation_id or "")) for app in apps}
    return hosts, apps, shown, total or 0


@bp.get("/live")
@page_role("viewer")
def list_live() -> Any:
    """The list's status cells and rows (keyed by application id, per host), sent again
    whenever one changes (one stream for the page); the sections whole, for when a host gets
    its first application or loses its last."""
    page = _page_number()

    def payload() -> dict[str, Any]:
        hosts, apps, shown, total = _listed(page)
        context = _sections(hosts, apps, shown, max(1, -(-total // PAGE_SIZE)))
        parts = {f"app-{app.id}-status": render_template(
            "apps/_list_status.html", app=app, status=shown[app.id]) for app in apps}  # fmt: skip
        rows = {
            f"apps-of-{host.id}": [
                [str(app.id), render_template("apps/_row.html", app=app, host=host, **context)]
                for app in context["by_host"][host.id]
            ]
            for host in hosts
            if host.id in context["busy_host_ids"]
        }
        region = {"id": "apps-sections", "html": render_template("apps/_sections.html", **context)}
        return {"parts": parts, "rows": rows, "region": region}

    return sse_response(live_parts_events(payload, heartbeat_seconds(), fingerprint=_listed_rows))


def _listed_rows(payload: dict[str, Any]) -> object:
    return payload["parts"], payload["rows"], payload["region"]["html"]


def _last_operations(apps: list[Application]) -> dict[str, Operation]:
    """The page's applications' last operations by id, in one query."""
    ids = [app.last_operation_id for app in apps if app.last_operation_id]
    if not ids:
        return {}
    return {op.id: op for op in db.session.scalars(select(Operation).where(Operation.id.in_(ids)))}


@bp.get("/host-suggestions")
@page_project_role("operator")
def host_suggestions() -> Any:
    """<option>s of the first hosts whose name starts with what was typed (the form's datalist)."""
    typed = request.args.get("host_name", "").strip()[:120]
    return render_template(
        "apps/_host_suggestions.html",
        hosts=host_choices(typed, limit=20, project_ids=visible_project_ids("operator")),
    )


@bp.post("")
@page_project_role("operator")
def create() -> Any:
    try:
        body = _form_app()
        extra = {}
        if body.get("host_id"):  # a host of the caller's projects, or one shared with them
            extra["project_id"] = deployable_host(body["host_id"], body.pop("project", None))[1]
        app = service.create_app(body, **extra)
    except SpectrError as exc:
        flash_error(exc)
        return _index_page(request.form, 422)  # the form keeps what was typed
    flash(f"Application {app.name} created; deploying revision 1.")
    return redirect(url_for("apps_pages.detail", app_id=app.id))


@bp.get("/argv")
@page_project_role("operator")
def argv_preview() -> Any:
    """The argv the Command field splits into, shown under it before anything is deployed."""
    argv, error = [], None
    try:
        argv = split_command(request.args.get("command", ""))
    except ValidationFailed as exc:
        error = exc.message
    return render_template("apps/_argv.html", argv=argv, error=error)


@bp.post("/refresh")
@page_role("viewer")
def refresh() -> Any:
    for app in db.session.scalars(service.apps_query(project_ids=visible_project_ids())):
        refresh_status(app)
    return redirect(url_for("apps_pages.index"))


@bp.get("/<id:app_id>")
@page_role("viewer")
def detail(app_id: int) -> Any:
    app = service.visible_app(app_id, "viewer")
    diff = None
    old, new = request.args.get("from", type=int), request.args.get("to", type=int)
    if old and new:
        try:
            diff = service.diff_revisions(app, old, new)
        except SpectrError as exc:
            flash_error(exc)
    return _detail_page(app, diff=diff)


def _live_values(app: Application) -> dict[str, Any]:
    """What the page's live parts show: status, ports, the actions that apply."""
    operation = last_operation(app)
    status, status_detail = shown_status(app, operation)
    return {
        "app": app,
        "host": get_host(app.host_id),
        "status": status,
        "status_detail": status_detail,
        "actions": actions_for(status),
        "op": operation,
        "containers": seen_containers([app])[app.id],
    }


def _detail_page(app: Application, **extra: Any) -> str:
    values = _live_values(app)
    operation = values["op"]
    return render_template(
        "apps/detail.html",
        **values,
        lines=operations.read_log(operation.id) if operation else [],
        # A copy may go to any host: the form lists them (a large fleet's: the first ones).
        copy_hosts=host_choices(
            limit=HOST_SELECT_LIMIT, project_ids=visible_project_ids("operator")
        )
        if can(app.project_id, "operator")
        else [],
        move_targets=app_move_targets(app, values["host"]),
        **{"diff": None, "exec_result": None, **extra},
    )


def _live_parts(app: Application) -> dict[str, str]:
    values = _live_values(app)
    parts = {
        "app-status": render_template("apps/_status.html", **values),
        "app-ports": render_template("apps/_ports.html", **values),
    }
    if can(app.project_id, "operator"):
        parts["app-actions"] = render_template("apps/_actions.html", **values)
    return parts


@bp.get("/<id:app_id>/live")
@page_role("viewer")
def live(app_id: int) -> Any:
    """The page's status, ports and actions, sent again each time the health sweep changes them."""
    service.visible_app(app_id, "viewer")
    return sse_response(live_status_events(app_id, _live_parts, heartbeat_seconds()))


@bp.post("/<id:app_id>/action/<action>")
@page_project_role("operator")
def act(app_id: int, action: str) -> Any:
    if action not in ACTIONS:
        flash(f"Unknown action {action}.", "error")
        return redirect(url_for("apps_pages.detail", app_id=app_id))
    return _run(app_id, lambda app: service.act(app, action))


@bp.post("/<id:app_id>/deploy")
@page_project_role("operator")
def deploy(app_id: int) -> Any:
    return _run(app_id, lambda app: service.deploy(app, request.form.get("revision", type=int)))


@bp.post("/<id:app_id>/rollback")
@page_project_role("operator")
def rollback(app_id: int) -> Any:
    return _run(
        app_id, lambda app: service.rollback(app, request.form.get("revision", type=int) or 0)
    )


def _run(app_id: int, start: Any) -> Any:
    app = service.visible_app(app_id, "operator")  # 404 in another project, 403 below operator
    try:
        operation = start(app)
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("apps_pages.detail", app_id=app_id))
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


@bp.post("/<id:app_id>/exec")
@page_project_role("operator")
def run_command(app_id: int) -> Any:
    app = service.visible_app(app_id, "operator")
    body = {
        "command": request.form.get("command", ""),
        "container": request.form.get("container") or None,
        "timeout": 30.0,
    }
    result = None
    try:
        result = relay.run_exec(app, body)
    except SpectrError as exc:
        flash_error(exc)
    return _detail_page(app, exec_result=result, command=body["command"])


@bp.post("/<id:app_id>/delete")
@page_project_role("operator")
def delete(app_id: int) -> Any:
    try:
        service.delete_app(service.visible_app(app_id, "operator"))
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("apps_pages.detail", app_id=app_id))
    flash("Application forgotten.")
    return redirect(url_for("apps_pages.index"))


@bp.get("/adopt/<id:host_id>")
@page_project_role("operator")
def adoptable(host_id: int) -> Any:
    host = visible_host(host_id, "operator")
    try:
        found = adoption.adoptable(host_id)
    except SpectrError as exc:
        flash_error(exc)
        found = []
    return render_template("apps/adopt.html", host=host, found=found)


@bp.post("/adopt/<id:host_id>")
@page_project_role("operator")
def adopt(host_id: int) -> Any:
    visible_host(host_id, "operator")
    try:
        app = adoption.adopt(
            host_id, request.form.get("kind", "container"), request.form.get("name", "")
        )
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("apps_pages.adoptable", host_id=host_id))
    flash(f"Adopted {app.name}; it kept running.")
    return redirect(url_for("apps_pages.detail", app_id=app.id))
