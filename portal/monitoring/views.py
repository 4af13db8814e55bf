"""Pages of monitoring: /metrics for Prometheus, the live fleet overview, the event log."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, flash, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select

from portal.core.errors import NotFound, SpectrError
from portal.core.live_parts import live_parts_events
from portal.core.security import check_role, current_principal, require_principal
from portal.core.sse import heartbeat_seconds, sse_response
from portal.extensions import db
from portal.monitoring import events, webhooks
from portal.monitoring.discovery import init_proxy_discovery, scrape_targets
from portal.monitoring.metrics import init_request_metrics, render_metrics
from portal.monitoring.models import EVENT_KINDS, Event
from portal.monitoring.overview import Viewer, fleet_overview
from portal.monitoring.schemas import WebhookSchema
from portal.projects.access import visible_project_ids
from portal.projects.models import Project
from portal.web.auth import page_role
from portal.web.forms import NO_STORE, flash_error, keep_secret, load_form, take_secret

bp = Blueprint("monitoring_pages", __name__)


@bp.record_once
def _install_hooks(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)
    init_request_metrics(app)
    init_proxy_discovery(app)


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus exposition of the portal's metrics (bearer token, viewer role)."""
    check_role("viewer")
    body, content_type = render_metrics()
    return Response(body, content_type=content_type)


@bp.get("/monitoring")
@page_role("viewer")
def index() -> Any:
    principal = current_principal()
    is_admin = principal is not None and principal.has_role("admin")
    return render_template(
        "monitoring/index.html",
        open_events=events.list_events("open", None, 100),
        recent_events=events.list_events(None, None, 50),
        webhooks=webhooks.list_webhooks() if is_admin else None,
        targets=scrape_targets(None, "(this portal)", "http"),
        event_kinds=EVENT_KINDS,
    )


@bp.get("/monitoring/overview")
@page_role("viewer")
def overview() -> Any:
    """The dashboard's live part, fetched again every few seconds by the home page."""
    return render_template(
        "monitoring/_overview.html", overview=fleet_overview(None, callers_viewer())
    )


def callers_viewer() -> Viewer:
    """The dashboard of the caller: its projects' hosts, applications and gateway traffic."""
    project_ids = visible_project_ids()
    if project_ids is None:
        return Viewer()
    if set(db.session.scalars(select(Project.id))) <= set(project_ids):  # e.g. only `default`
        return Viewer()
    return Viewer(project_ids, require_principal().user_id)


# The overview's "Updated …" stamp changes every time it is rendered; a change elsewhere is news.
_STAMP = re.compile(r'<p class="muted" id="overview-stamp">.*?</p>', re.S)
OVERVIEW_POLL_SECONDS = 2.0  # a dozen grouped queries a round: not every second per open tab


@bp.get("/monitoring/overview/live")
@page_role("viewer")
def overview_live() -> Any:
    """The dashboard's live part as Server-Sent Events, sent when anything in it changes."""

    viewer = callers_viewer()  # worked out while the request is here; the stream outlives it

    def payload() -> dict[str, Any]:
        html = render_template("monitoring/_overview.html", overview=fleet_overview(None, viewer))
        return {"parts": {"fleet-overview": html}}

    return sse_response(live_parts_events(
        payload, heartbeat_seconds(), OVERVIEW_POLL_SECONDS,
        fingerprint=lambda sent: _STAMP.sub("", sent["parts"]["fleet-overview"])))  # fmt: skip


@bp.post("/monitoring/events/<id:event_id>/resolve")
@page_role("operator")
def resolve_event(event_id: int) -> Any:
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound(f"No event {event_id}.")
    events.resolve_event(event)
    flash(f"Event '{event.subject}' resolved.")
    return redirect(url_for("monitoring_pages.index"))


@bp.post("/monitoring/webhooks")
@page_role("admin")
def create_webhook() -> Any:
    form = request.form
    body = {"name": form.get("name", ""), "url": form.get("url", ""),
            "event_kinds": form.getlist("event_kinds")}  # fmt: skip
    try:
        values = load_form(WebhookSchema(), body)
        hook = webhooks.create_webhook(values["name"], values["url"], values["event_kinds"], None)
    except SpectrError as exc:
        flash_error(exc)
        return redirect(url_for("monitoring_pages.index"))
    # Post/redirect/get: reloading the page that shows the secret makes no second webhook.
    keep_secret("webhook", name=hook.name, url=hook.url, secret=hook.secret)
    return redirect(url_for("monitoring_pages.webhook_created"))


@bp.get("/monitoring/webhooks/created")
@page_role("admin")
def webhook_created() -> Any:
    created = take_secret("webhook")
    if created is None:
        flash("A signing secret is shown once, right after the webhook is made.")
        return redirect(url_for("monitoring_pages.index"))
    return render_template("monitoring/webhook_created.html", hook=created), 200, NO_STORE


@bp.post("/monitoring/webhooks/<id:webhook_id>/delete")
@page_role("admin")
def delete_webhook(webhook_id: int) -> Any:
    hook = webhooks.get_webhook(webhook_id)
    webhooks.delete_webhook(hook)
    flash(f"Webhook '{hook.name}' deleted.")
    return redirect(url_for("monitoring_pages.index"))
