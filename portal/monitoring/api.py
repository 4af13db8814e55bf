"""REST endpoints of monitoring: Prometheus service discovery, events, webhooks."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.security import require_role
from portal.monitoring import events, webhooks
from portal.monitoring.discovery import scrape_targets_json
from portal.monitoring.schemas import (
    DeliverySchema,
    EventQuerySchema,
    EventSchema,
    TargetGroupSchema,
    TargetQuerySchema,
    WebhookCreatedSchema,
    WebhookSchema,
)
from portal.monitoring.settings import monitoring_setting
from portal.projects.access import project_clause, project_role

blp = Blueprint(
    "monitoring", __name__, url_prefix="/api/v1/monitoring", description="Monitoring and alerts"
)


@blp.route("/targets")
class Targets(MethodView):
    @require_role("viewer")
    @blp.arguments(TargetQuerySchema, location="query")
    @blp.response(200, TargetGroupSchema(many=True))
    def get(self, query: dict) -> Any:
        """Scrape targets in Prometheus HTTP SD format: the portal, agents, proxies."""
        portal_address = monitoring_setting("MONITORING_PORTAL_TARGET") or request.host
        # Already in the schema's shape; dumping 10,000 groups through marshmallow took longer
        # than reading them, so the list goes out as the JSON text it was built as.
        document = scrape_targets_json(query.get("role"), portal_address, request.scheme)
        return Response(document, mimetype="application/json")


@blp.route("/events")
class Events(MethodView):
    @require_role("viewer")
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventSchema(many=True))
    def get(self, query: dict) -> Any:
        """The event log, newest first."""
        return events.list_events(
            query.get("state"), query.get("kind"), query["limit"], within=project_clause
        )


@blp.route("/events/<id:event_id>/resolve")
class EventResolve(MethodView):
    @project_role("operator")
    @blp.response(200, EventSchema)
    def post(self, event_id: int) -> Any:
        """Resolve an open event (acknowledge it)."""
        return events.resolve_event(events.visible_event(event_id, "operator"))


@blp.route("/webhooks")
class Webhooks(MethodView):
    @require_role("admin")
    @blp.response(200, WebhookSchema(many=True))
    def get(self) -> Any:
        """List webhooks (their secrets are never shown)."""
        return webhooks.list_webhooks()

    @require_role("admin")
    @blp.arguments(WebhookSchema)
    @blp.response(201, WebhookCreatedSchema)
    def post(self, body: dict) -> Any:
        """Register a webhook; the signing secret is in this answer only."""
        hook = webhooks.create_webhook(
            body["name"], body["url"], body["event_kinds"], body.get("secret")
        )
        hook.signing_secret = hook.secret  # a plain attribute for this answer
        return hook


@blp.route("/webhooks/<id:webhook_id>")
class WebhookItem(MethodView):
    @require_role("admin")
    @blp.response(204)
    def delete(self, webhook_id: int) -> None:
        """Delete a webhook and its delivery history."""
        webhooks.delete_webhook(webhooks.get_webhook(webhook_id))


@blp.route("/webhooks/<id:webhook_id>/deliveries")
class WebhookDeliveries(MethodView):
    @require_role("admin")
    @blp.response(200, DeliverySchema(many=True))
    def get(self, webhook_id: int) -> Any:
        """The latest deliveries to a webhook and how they went."""
        return webhooks.list_deliveries(webhooks.get_webhook(webhook_id))
