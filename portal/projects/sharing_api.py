"""REST endpoints that lend hosts to other projects and move resources between projects.

Shares: the host's project's admins (or global admins) list, add, change and end them. Moves:
`POST .../move {project}` on a host, an application, a gateway key or a proxy route; the
caller is admin of the resource's project and of the target.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from portal.apps.schemas import AppDetailSchema
from portal.apps.service import visible_app
from portal.core.api_base import Blueprint
from portal.hosts.schemas import HostDetailSchema
from portal.hosts.service import visible_host
from portal.projects import moving, sharing
from portal.projects.access import checked, project_role, target_project
from portal.projects.schemas import (
    HostShareAddSchema,
    HostShareChangeSchema,
    HostShareSchema,
    MoveSchema,
)
from portal.proxy import service as proxy
from portal.proxy.schemas import GatewayKeySchema, RouteSchema

blp = Blueprint(
    "project_moves",
    __name__,
    url_prefix="/api/v1",
    description="Hosts shared between projects; moving resources between projects",
)


@blp.route("/hosts/<id:host_id>/shares")
class HostShares(MethodView):
    @project_role("viewer")
    @blp.response(200, HostShareSchema(many=True))
    def get(self, host_id: int) -> Any:
        """List the projects the host is shared with (members of the host's project)."""
        return sharing.shares_of(visible_host(host_id, "viewer").id)

    @project_role("admin")
    @blp.arguments(HostShareAddSchema)
    @blp.response(201, HostShareSchema)
    @blp.alt_response(409, description="Already shared with that project")
    def post(self, body: dict, host_id: int) -> Any:
        """Share the host with another project, optionally up to `gpu_limit` of its GPUs."""
        host = visible_host(host_id, "admin")
        return sharing.share_host(host, body["project"], body["gpu_limit"])


@blp.route("/hosts/<id:host_id>/shares/<string:project>")
class HostShareItem(MethodView):
    @project_role("admin")
    @blp.arguments(HostShareChangeSchema)
    @blp.response(200, HostShareSchema)
    def patch(self, body: dict, host_id: int, project: str) -> Any:
        """Change how many of the host's GPUs the share lends (not below what is held)."""
        host = visible_host(host_id, "admin")
        return sharing.change_share(host, sharing.get_share(host, project), body["gpu_limit"])

    @project_role("admin")
    @blp.response(204)
    @blp.alt_response(409, description="The project still has applications on the host")
    def delete(self, host_id: int, project: str) -> None:
        """End a share; refused while the project has applications on the host."""
        host = visible_host(host_id, "admin")
        sharing.unshare_host(host, sharing.get_share(host, project))


@blp.route("/hosts/<id:host_id>/move")
class HostMove(MethodView):
    @project_role("admin")
    @blp.arguments(MoveSchema)
    @blp.response(200, HostDetailSchema)
    @blp.alt_response(409, description="Over a quota of the target project")
    def post(self, body: dict, host_id: int) -> Any:
        """Move a host, and its project's applications on it, to another project."""
        host = visible_host(host_id, "admin")
        return moving.move_host(host, target_project(body["project"], "admin"))


@blp.route("/apps/<id:app_id>/move")
class AppMove(MethodView):
    @project_role("admin")
    @blp.arguments(MoveSchema)
    @blp.response(200, AppDetailSchema)
    @blp.alt_response(409, description="Over a quota of the target project or its host share")
    def post(self, body: dict, app_id: int) -> Any:
        """Move an application to a project that owns its host or has a share of it."""
        app = visible_app(app_id, "admin")
        return moving.move_app(app, target_project(body["project"], "admin"))


@blp.route("/proxy/keys/<id:key_id>/move")
class GatewayKeyMove(MethodView):
    @project_role("admin")
    @blp.arguments(MoveSchema)
    @blp.response(200, GatewayKeySchema)
    def post(self, body: dict, key_id: int) -> Any:
        """Move a gateway key to another project."""
        key = checked(proxy.get_key(key_id), "admin", f"No gateway key with id {key_id}.")
        return moving.move_key(key, target_project(body["project"], "admin"))


@blp.route("/proxy/routes/<id:route_id>/move")
class RouteMove(MethodView):
    @project_role("admin")
    @blp.arguments(MoveSchema)
    @blp.response(200, RouteSchema)
    def post(self, body: dict, route_id: int) -> Any:
        """Move a proxy route to another project."""
        route = checked(proxy.get_route(route_id), "admin", f"No route with id {route_id}.")
        return moving.move_route(route, target_project(body["project"], "admin"))
