"""Pages of monitoring: /metrics for Prometheus, the live fleet overview, the event log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template
from flask.blueprints import BlueprintSetupState

from portal.core.security import check_role, current_principal
from portal.monitoring import events, webhooks
from portal.monitoring.discovery import init_proxy_discovery, scrape_targets
from portal.monitoring.metrics import init_request_metrics, render_metrics
from portal.monitoring.overview import fleet_overview
from portal.web.auth import page_role

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
    )


@bp.get("/monitoring/overview")
@page_role("viewer")
def overview() -> Any:
    """The dashboard's live part, fetched again every few seconds by the home page."""
    return render_template("monitoring/_overview.html", overview=fleet_overview())
