"""REST endpoints of operations: list, create (tests and benchmarks), show, log, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import g, url_for
from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.converters import MAX_DATABASE_ID
from portal.core.operations import service
from portal.core.operations.models import Operation
from portal.core.operations.schemas import (
    LogLineSchema,
    LogQuerySchema,
    OperationCreateSchema,
    OperationLogSchema,
    OperationQuerySchema,
    OperationSchema,
)
from portal.core.pagination import SelectPage
from portal.core.request_input import header_integer, header_text
from portal.core.security import current_principal, require_role
from portal.core.sse import sse_alt_response, sse_event, sse_response
from portal.projects.access import project_role

blp = Blueprint(
    "operations", __name__, url_prefix="/api/v1/operations", description="Long-running actions"
)
FOLLOW_POLL_SECONDS = 0.25
IDEMPOTENCY_KEY_LENGTH = Operation.__table__.c.idempotency_key.type.length


def accepted(operation: Any, created: bool = True) -> tuple[Any, int, dict[str, str]]:
    """The 202 answer every creating endpoint gives: the operation and its Location."""
    location = url_for("operations.OperationItem", operation_id=operation.id)
    return operation, 202, {"Location": location}


def create_from_request(kind: str, params: dict, target: str | None = None, **extra: Any) -> Any:
    """Create an operation with the request's caller, Idempotency-Key and request id."""
    operation, _ = service.create_operation(
        kind,
        params,
        target=target,
        requested_by=current_principal(),
        idempotency_key=header_text("Idempotency-Key", IDEMPOTENCY_KEY_LENGTH),
        request_id=g.get("request_id"),
        **extra,
    )
    return accepted(operation)


@blp.route("")
class OperationCollection(MethodView):
    @require_role("viewer")
    @blp.arguments(OperationQuerySchema, location="query")
    @blp.response(200, OperationSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, filters: dict) -> Any:
        """List operations (of your projects), newest first."""
        return service.list_operations(**filters, within=service.visible_operations)

    @require_role("operator")
    @blp.arguments(OperationCreateSchema)
    @blp.response(202, OperationSchema)
    @blp.alt_response(409, description="Idempotency-Key reused for another request")
    def post(self, body: dict) -> Any:
        """Start an operation of a directly creatable kind (noop, sleep)."""
        service.require_creatable_kind(body["kind"])
        return create_from_request(
            body["kind"],
            body["params"],
            target=body["target"],
            callback_url=body["callback_url"],
            max_attempts=body["max_attempts"],
        )


@blp.route("/<operation_id>")
class OperationItem(MethodView):
    @require_role("viewer")
    @blp.response(200, OperationSchema)
    def get(self, operation_id: str) -> Any:
        """Show one operation."""
        return service.visible_operation(operation_id)


@blp.route("/<operation_id>/cancel")
class OperationCancel(MethodView):
    @project_role("operator")
    @blp.response(202, OperationSchema)
    def post(self, operation_id: str) -> Any:
        """Cancel an operation (at once if waiting; a running one is asked to stop)."""
        service.visible_operation(operation_id, "operator")
        return service.cancel_operation(operation_id)


@blp.route("/<operation_id>/log")
class OperationLog(MethodView):
    @require_role("viewer")
    @blp.arguments(LogQuerySchema, location="query")
    @blp.response(200, OperationLogSchema)
    @sse_alt_response(blp, "with follow=1: `line` and `state` events, then `end`")
    def get(self, query: dict, operation_id: str) -> Any:
        """Read the log; with follow=1, stream it as Server-Sent Events until the end."""
        operation = service.visible_operation(operation_id)
        if query["follow"]:
            last_seen = header_integer("Last-Event-ID", MAX_DATABASE_ID)
            after = query["after"] if last_seen is None else last_seen
            return sse_response(_follow_log(operation_id, after))
        lines = service.read_log(operation_id, query["after"], query["limit"])
        return {"operation_id": operation_id, "state": operation.state, "lines": lines}


def _follow_log(operation_id: str, after: int) -> Iterator[str]:
    """Yield log lines as they are written, state changes, then the final state, then stop."""
    line_schema = LogLineSchema()
    idle_polls, last_state = 0, None
    for lines, operation, last in service.follow_log(operation_id, after, FOLLOW_POLL_SECONDS):
        for line in lines:
            yield sse_event(line_schema.dump(line), event="line", event_id=line.id)
        state = {
            "state": operation.state,
            "progress": operation.progress,
            "progress_message": operation.progress_message,
            "attempts": operation.attempts,
            "max_attempts": operation.max_attempts,
            "error": operation.error,
        }
        if last:
            yield sse_event(state, event="end")
            return
        idle_polls = 0 if lines else idle_polls + 1
        if state != last_state or idle_polls % 40 == 39:  # changes, and a keep-alive
            yield sse_event(state, event="state")
            last_state = state
