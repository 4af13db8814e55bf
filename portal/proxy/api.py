"""REST endpoints of the proxy context: the config document, routes, models, keys, usage."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.errors import Conflict, Forbidden
from portal.core.security import require_principal, require_role
from portal.projects.access import (
    checked,
    project_clause,
    project_role,
    target_project,
    visible_project_ids,
)
from portal.proxy import service
from portal.proxy.config_document import (
    CONTRACT_HEADER,
    PROXY_CONFIG_CONTRACT,
    config_document,
    proxy_contract_problem,
)
from portal.proxy.schemas import (
    GatewayKeyCreatedSchema,
    GatewayKeySchema,
    GatewayModelSchema,
    RouteSchema,
    RouteUpdateSchema,
    UsageAggregateSchema,
    UsageQuerySchema,
)
from portal.proxy.usage import usage_aggregates

blp = Blueprint("proxy", __name__, url_prefix="/api/v1/proxy", description="Proxy and LLM gateway")


@blp.route("/config")
class ProxyConfig(MethodView):
    @require_role("operator")
    @blp.response(200)
    @blp.alt_response(304, description="Unchanged since the ETag sent in If-None-Match")
    def get(self) -> Any:
        """The config document spectr_proxy runs on (ETag / If-None-Match).

        A proxy names the contract it speaks in Spectr-Proxy-Contract; one this portal does not
        serve gets 409 with the reason (and is listed so on the proxy page).
        """
        contract = request.headers.get(CONTRACT_HEADER)
        problem = proxy_contract_problem(contract)
        if problem:
            raise Conflict(problem, {"Spectr-Proxy-Contract": [problem]})
        document = config_document(contract)
        etag = f'"{document["etag"]}"'
        headers = {"ETag": etag, CONTRACT_HEADER: PROXY_CONFIG_CONTRACT}
        if request.headers.get("If-None-Match") in (etag, document["etag"]):
            return "", 304, headers
        return document, 200, headers


def _route(route_id: int, needed: str) -> Any:
    """The route, if the caller has `needed` in its project; 404 like a missing one if not."""
    return checked(service.get_route(route_id), needed, f"No route with id {route_id}.")


@blp.route("/routes")
class Routes(MethodView):
    @project_role("viewer")
    @blp.response(200, RouteSchema(many=True))
    def get(self) -> Any:
        """List routes (of your projects)."""
        return service.list_routes(visible_project_ids())

    @project_role("operator")
    @blp.arguments(RouteSchema)
    @blp.response(201, RouteSchema)
    def post(self, body: dict) -> Any:
        """Create a route: host names and a path prefix to a pool of upstreams."""
        project = target_project(body.pop("project"), "operator")
        return service.create_route({**body, "project_id": project.id})


@blp.route("/routes/<id:route_id>")
class RouteItem(MethodView):
    @project_role("viewer")
    @blp.response(200, RouteSchema)
    def get(self, route_id: int) -> Any:
        """Show a route."""
        return _route(route_id, "viewer")

    @project_role("operator")
    @blp.arguments(RouteUpdateSchema)
    @blp.response(200, RouteSchema)
    def patch(self, body: dict, route_id: int) -> Any:
        """Change a route."""
        return service.update_route(_route(route_id, "operator"), body)

    @project_role("operator")
    @blp.response(204)
    def delete(self, route_id: int) -> None:
        """Delete a route."""
        service.delete_route(_route(route_id, "operator"))


@blp.route("/models")
class Models(MethodView):
    @require_role("viewer")
    @blp.response(200, GatewayModelSchema(many=True))
    def get(self) -> Any:
        """List models the gateway serves (by applications of your projects)."""
        return service.list_models(project_clause)

    @require_role("operator")
    @blp.arguments(GatewayModelSchema)
    @blp.response(200, GatewayModelSchema)
    def put(self, body: dict) -> Any:
        """Create or replace a gateway model by name (its replicas, aliases and fallbacks)."""
        return service.upsert_model(body)


@blp.route("/models/<id:model_id>")
class ModelItem(MethodView):
    @require_role("operator")
    @blp.response(204)
    def delete(self, model_id: int) -> None:
        """Stop serving a model through the gateway."""
        service.delete_model(service.visible_model(model_id, "operator"))


@blp.route("/keys")
class Keys(MethodView):
    @project_role("viewer")
    @blp.response(200, GatewayKeySchema(many=True))
    def get(self) -> Any:
        """List gateway keys of your projects: yours, and all of those you administer."""
        return service.list_keys(
            require_principal(), visible_project_ids(), visible_project_ids("admin")
        )

    @project_role("operator")
    @blp.arguments(GatewayKeySchema)
    @blp.response(201, GatewayKeyCreatedSchema)
    def post(self, body: dict) -> Any:
        """Create a gateway key in a project; the secret is in this answer only."""
        project = target_project(body.pop("project"), "operator")
        key, secret = service.create_key(require_principal(), {**body, "project_id": project.id})
        key.key = secret  # a plain attribute for this answer; never stored
        return key


@blp.route("/keys/<id:key_id>")
class KeyItem(MethodView):
    @project_role("operator")
    @blp.response(200, GatewayKeySchema)
    def delete(self, key_id: int) -> Any:
        """Revoke a gateway key; proxies refuse it within a second."""
        key = checked(service.get_key(key_id), "operator", f"No gateway key with id {key_id}.")
        principal = require_principal()
        if key.user_id != principal.user_id and not principal.has_role("admin"):
            raise Forbidden("Only the key's owner or an admin can revoke it.")
        return service.revoke_key(key)


@blp.route("/usage")
class Usage(MethodView):
    @require_role("viewer")
    @blp.arguments(UsageQuerySchema, location="query")
    @blp.response(200, UsageAggregateSchema(many=True))
    def get(self, query: dict) -> Any:
        """Requests and tokens aggregated per day, key, model or user (keys of your projects)."""
        return usage_aggregates(
            query["group_by"], query.get("since"), query.get("until"), within=project_clause
        )
