"""Relay endpoints: a host's container logs (SSE) and exec with streamed output."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.core.command_line import split_command
from portal.core.sse import sse_alt_response, sse_response
from portal.hosts import relay
from portal.hosts.log_follow import LOG_EVENTS, TailField, resume_point, validate_since
from portal.hosts.service import visible_host
from portal.projects.access import project_role

blp = Blueprint(
    "host_containers", __name__, url_prefix="/api/v1/hosts", description="Container relay"
)
CONTAINER = "/<id:host_id>/containers/<string(maxlength=128):container_id>"


class ContainerLogsQuery(ma.Schema):
    tail = TailField(load_default=100)
    follow = ma.fields.Boolean(load_default=True)
    download = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "answer a .log file (text/plain attachment), not events"},
    )
    timestamps = ma.fields.Boolean(
        load_default=False, metadata={"description": "with download=1: each line's time first"}
    )
    since = ma.fields.String(
        load_default=None,
        validate=validate_since,
        metadata={"description": "start after this line's timestamp (its event id), or Unix s"},
    )


class ContainerExecBody(ma.Schema):
    argv = ma.fields.List(ma.fields.String(), load_default=None)
    command = ma.fields.String(
        load_default=None, metadata={"description": "split like a shell would; no shell runs"}
    )
    user = ma.fields.String(load_default=None)
    workdir = ma.fields.String(load_default=None)
    env = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=None)
    timeout = ma.fields.Float(load_default=60.0, validate=ma.validate.Range(0.1, 3600))

    @ma.validates_schema
    def _one_command(self, data: dict, **_: object) -> None:
        if not data.get("argv") and not data.get("command"):
            raise ma.ValidationError("Give argv (a list) or command.", "argv")


@blp.route(f"{CONTAINER}/logs")
class ContainerLogs(MethodView):
    @project_role("viewer")
    @blp.arguments(ContainerLogsQuery, location="query")
    @blp.response(200, description="text/event-stream of line events, then end")
    @sse_alt_response(blp, LOG_EVENTS)
    @blp.alt_response(
        200,
        schema={"type": "string"},
        content_type="text/plain",
        description="with download=1: the log as a .log file (Content-Disposition: attachment)",
        success=True,
    )
    def get(self, query: dict, host_id: int, container_id: str) -> Any:
        """Stream a container's log as Server-Sent Events, or download it as a .log file.

        follow=0 ends after the tail; download=1 answers text/plain as an attachment.
        """
        host = visible_host(host_id, "viewer")
        if query["download"]:
            engine = relay.open_engine(host)
            return relay.download_logs(engine, container_id, query["tail"], query["timestamps"])
        since = resume_point(query["since"], request.headers.get("Last-Event-ID"))
        engine = relay.open_engine(host)
        events = relay.stream_logs(engine, container_id, query["tail"], query["follow"], since)
        return sse_response(events)


@blp.route(f"{CONTAINER}/exec")
class ContainerExec(MethodView):
    @project_role("operator")
    @blp.arguments(ContainerExecBody)
    @blp.response(200, description="text/event-stream of stdout/stderr events, then exit")
    @sse_alt_response(blp, "`stdout` and `stderr` events, then `exit` with the exit code")
    def post(self, body: dict, host_id: int, container_id: str) -> Any:
        """Run a command in a container (argv, never a shell); the output streams back."""
        argv = body["argv"] or split_command(body["command"])
        options = {k: body[k] for k in ("user", "workdir", "env", "timeout") if body[k] is not None}
        return sse_response(
            relay.stream_exec(visible_host(host_id, "operator"), container_id, argv, options)
        )
