"""REST endpoints of applications: CRUD with revisions, lifecycle operations, logs, exec,
adoption, and deploying a catalog model."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from portal.apps import adoption, editing, relay, service
from portal.apps.compose_check import check_compose_text
from portal.apps.lifecycle import apply_health_checks, refresh_status
from portal.apps.model_deploy import deploy_model
from portal.apps.schemas import (
    AdoptableSchema,
    AdoptBodySchema,
    AppDetailSchema,
    AppLogsSchema,
    AppQuerySchema,
    AppSchema,
    ComposeCheckBodySchema,
    ComposeCheckSchema,
    DeployBodySchema,
    DeployModelSchema,
    DiffQuerySchema,
    DiffSchema,
    DuplicateBodySchema,
    ExecBodySchema,
    ExecResultSchema,
    LogsQuerySchema,
    RefreshQuerySchema,
    RevisionSchema,
    RollbackBodySchema,
)
from portal.apps.spec import AppInputSchema
from portal.core.api_base import Blueprint
from portal.core.operations.api import accepted
from portal.core.operations.schemas import OperationSchema
from portal.core.pagination import SelectPage
from portal.core.sse import sse_alt_response, sse_response
from portal.hosts.log_follow import LOG_EVENTS, resume_point
from portal.hosts.service import deployable_host, visible_host
from portal.projects.access import project_role, visible_project_ids

blp = Blueprint("apps", __name__, url_prefix="/api/v1", description="Applications on hosts")


class CheckedAppPage(SelectPage):
    """A page of applications whose status is brought up to date from the last health sweep."""

    @property
    def items(self) -> list[Any]:
        apps = super().items
        apply_health_checks(apps)
        return apps


@blp.route("/apps")
class AppCollection(MethodView):
    @project_role("viewer")
    @blp.arguments(AppQuerySchema, location="query")
    @blp.response(200, AppSchema(many=True))
    @blp.paginate(CheckedAppPage, page_size=100, max_page_size=500)
    def get(self, query: dict) -> Any:
        """List applications (optionally of one host), with status from the health checks."""
        return service.apps_query(query["host_id"], project_ids=visible_project_ids())

    @project_role("operator")
    @blp.arguments(AppInputSchema)
    @blp.response(201, AppDetailSchema)
    @blp.alt_response(409, description="Host not ready, port taken, GPUs not free, name taken")
    def post(self, body: dict) -> Any:
        """Create an application (revision 1) and, unless deploy=false, start deploying it.

        It belongs to `project`: its host's project or one the host is shared with (by
        default the first of those where the caller is an operator).
        """
        project = body.pop("project", None)
        if not body.get("host_id"):
            return service.create_app(body)  # a 422 naming the missing field
        _, project_id = deployable_host(body["host_id"], project)
        return service.create_app(body, project_id=project_id)


@blp.route("/apps/<id:app_id>")
class AppItem(MethodView):
    @project_role("viewer")
    @blp.arguments(RefreshQuerySchema, location="query")
    @blp.response(200, AppDetailSchema)
    def get(self, query: dict, app_id: int) -> Any:
        """Show an application with its revisions; refresh=1 reads status from the host."""
        app = service.visible_app(app_id, "viewer")
        return refresh_status(app) if query["refresh"] else app

    @project_role("operator")
    @blp.response(204)
    def delete(self, app_id: int) -> None:
        """Forget an application that is no longer on its host."""
        service.delete_app(service.visible_app(app_id, "operator"))


@blp.route("/apps/<id:app_id>/revisions")
class AppRevisions(MethodView):
    @project_role("viewer")
    @blp.response(200, RevisionSchema(many=True))
    def get(self, app_id: int) -> Any:
        """List the revisions of an application, oldest first."""
        return service.visible_app(app_id, "viewer").revisions

    @project_role("operator")
    @blp.arguments(AppInputSchema)
    @blp.response(201, AppDetailSchema)
    def post(self, body: dict, app_id: int) -> Any:
        """Add a revision (a full spec; secrets are kept unless replaced or removed), deploy it."""
        app = service.visible_app(app_id, "operator")
        return service.add_revision(app, {**body, "kind": app.kind})


@blp.route("/apps/<id:app_id>/duplicate")
class AppDuplicate(MethodView):
    @project_role("operator")
    @blp.arguments(DuplicateBodySchema)
    @blp.response(201, AppDetailSchema)
    @blp.alt_response(409, description="Name taken on that host; host not ready when deploying")
    def post(self, body: dict, app_id: int) -> Any:
        """Copy an application's latest revision (secrets included) into a new application."""
        source = service.visible_app(app_id, "operator")
        host_id = body["host_id"] or source.host_id
        deployable_host(host_id, prefer=source.project_id)
        return editing.duplicate_app(source, body["name"], host_id, body["deploy"])


@blp.route("/apps/compose/check")
class ComposeCheck(MethodView):
    @project_role("operator")
    @blp.arguments(ComposeCheckBodySchema)
    @blp.response(200, ComposeCheckSchema)
    def post(self, body: dict) -> Any:
        """Check compose YAML as a deploy would; each problem names its line. Saves nothing."""
        return check_compose_text(body["compose"])


@blp.route("/apps/<id:app_id>/diff")
class AppDiff(MethodView):
    @project_role("viewer")
    @blp.arguments(DiffQuerySchema, location="query")
    @blp.response(200, DiffSchema)
    def get(self, query: dict, app_id: int) -> Any:
        """Diff two revisions (secret values shown as fingerprints)."""
        app = service.visible_app(app_id, "viewer")
        return service.diff_revisions(app, query["from_revision"], query["to_revision"])


@blp.route("/apps/<id:app_id>/deploy")
class AppDeploy(MethodView):
    @project_role("operator")
    @blp.arguments(DeployBodySchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, app_id: int) -> Any:
        """Deploy a revision (the latest by default) through spectr.core.deploy_app."""
        return accepted(service.deploy(service.visible_app(app_id, "operator"), body["revision"]))


@blp.route("/apps/<id:app_id>/rollback")
class AppRollback(MethodView):
    @project_role("operator")
    @blp.arguments(RollbackBodySchema)
    @blp.response(202, OperationSchema)
    def post(self, body: dict, app_id: int) -> Any:
        """Make a new revision equal to an older one and deploy it."""
        return accepted(service.rollback(service.visible_app(app_id, "operator"), body["revision"]))


def _action_view(action: str) -> type[MethodView]:
    class AppAction(MethodView):
        @project_role("operator")
        @blp.response(202, OperationSchema)
        def post(self, app_id: int) -> Any:
            return accepted(service.act(service.visible_app(app_id, "operator"), action))

    AppAction.__name__ = f"App{action.capitalize()}"
    AppAction.post.__doc__ = {
        "remove": "Remove the application from its host through spectr.core.remove_app.",
        "pull": "Pull the application's images onto its host.",
    }.get(action, f"{action.capitalize()} the application's containers through the host's engine.")
    return AppAction


for _action in ("start", "stop", "restart", "pull", "remove"):
    blp.route(f"/apps/<id:app_id>/{_action}")(_action_view(_action))


@blp.route("/apps/<id:app_id>/logs")
class AppLogs(MethodView):
    @project_role("viewer")
    @blp.arguments(LogsQuerySchema, location="query")
    @blp.response(200, AppLogsSchema)
    @sse_alt_response(blp, f"with follow=1: {LOG_EVENTS}")
    @blp.alt_response(
        200,
        schema={"type": "string"},
        content_type="text/plain",
        description="with download=1: the log as a .log file (Content-Disposition: attachment)",
        success=True,
    )
    def get(self, query: dict, app_id: int) -> Any:
        """Read a container's log; follow=1 streams it as Server-Sent Events, download=1 as a file."""
        app = service.visible_app(app_id, "viewer")
        if query["download"]:
            return relay.log_file(app, query["tail"], query["container"], query["timestamps"])
        if query["follow"]:
            since = resume_point(query["since"], request.headers.get("Last-Event-ID"))
            events = relay.follow_logs(app, query["tail"], query["container"], since)
            return sse_response(events)
        return relay.read_logs(app, query["tail"], query["container"])


@blp.route("/apps/<id:app_id>/exec")
class AppExec(MethodView):
    @project_role("operator")
    @blp.arguments(ExecBodySchema)
    @blp.response(200, ExecResultSchema)
    def post(self, body: dict, app_id: int) -> Any:
        """Run a command in one of the application's containers (no shell) and return its output."""
        return relay.run_exec(service.visible_app(app_id, "operator"), body)


@blp.route("/hosts/<id:host_id>/adoptable")
class HostAdoptable(MethodView):
    @project_role("viewer")
    @blp.response(200, AdoptableSchema(many=True))
    def get(self, host_id: int) -> Any:
        """Containers and compose projects on the host that no application covers."""
        return adoption.adoptable(visible_host(host_id, "viewer").id)


@blp.route("/apps/adopt")
class AppAdopt(MethodView):
    @project_role("operator")
    @blp.arguments(AdoptBodySchema)
    @blp.response(201, AppDetailSchema)
    def post(self, body: dict) -> Any:
        """Adopt a running container or compose project as an application, without restarting it."""
        host = visible_host(body["host_id"], "operator")
        return adoption.adopt(host.id, body["kind"], body["name"])


@blp.route("/models/<id:model_id>/deploy")
class ModelDeploy(MethodView):
    @project_role("operator")
    @blp.arguments(DeployModelSchema)
    @blp.response(201, AppDetailSchema)
    @blp.alt_response(409, description="Host not ready, port taken, GPUs not free or too small")
    def post(self, body: dict, model_id: int) -> Any:
        """Create and deploy a model server from a catalog model, a runtime, a host and GPUs."""
        if body.get("host_id"):
            deployable_host(body["host_id"])
        return deploy_model(model_id, body)
