"""Logs and exec of an application's containers, relayed from the host's engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portal.apps.lifecycle import app_containers, engine_of
from portal.apps.models import Application
from portal.core.audit import record_audit
from portal.core.command_line import split_command
from portal.core.errors import Conflict, NotFound, UpstreamUnavailable, ValidationFailed
from portal.engines import ContainerEngine, ContainerInfo, EngineError
from portal.extensions import db
from portal.hosts.log_follow import not_started_event
from portal.hosts.models import Host
from portal.hosts.relay import download_logs, stream_logs


def _host(app: Application) -> Host:
    return db.session.get_one(Host, app.host_id)


def pick_container(engine: ContainerEngine, app: Application, name: str | None) -> ContainerInfo:
    """The container a request means: the named one, or the application's first."""
    containers = app_containers(engine, app)
    if not containers:
        raise Conflict(f"Application '{app.name}' has no container on its host.")
    if name is None:
        return containers[0]
    for info in containers:
        if name in (info.name, info.id, info.labels.get("com.docker.compose.service")):
            return info
    raise NotFound(f"Application '{app.name}' has no container '{name}'.")


def read_logs(app: Application, tail: int | None, container: str | None) -> dict[str, Any]:
    """The last `tail` log frames of one container."""
    with engine_of(_host(app)) as engine:
        info = pick_container(engine, app, container)
        try:
            lines = [{"stream": c.stream, "data": c.data} for c in engine.logs(info.id, tail=tail)]
        except EngineError as exc:
            raise UpstreamUnavailable(f"Cannot read logs: {exc.message}") from None
    return {"container": info.name, "lines": lines}


def log_file(app: Application, tail: int | None, container: str | None, timestamps: bool) -> Any:
    """One container's log as a .log file (see portal.hosts.relay.download_logs)."""
    engine = engine_of(_host(app))
    try:
        info = pick_container(engine, app, container)
    except BaseException:
        engine.close()
        raise
    return download_logs(engine, info.id, tail, timestamps)


def follow_logs(
    app: Application, tail: int | None, container: str | None, since_ns: int | None
) -> Iterator[str]:
    """Server-Sent Events of a container's log until it stops or the client goes away.

    An application without a container yet (never deployed, or its deploy still running) gets
    a stream that says so and ends, not a refusal: the page shows it and asks again later.
    """
    engine = engine_of(_host(app))
    try:
        info = pick_container(engine, app, container)
    except Conflict:
        engine.close()
        return iter([not_started_event()])
    except BaseException:
        engine.close()
        raise
    return stream_logs(engine, info.name, tail, follow=True, since_ns=since_ns)


def run_exec(app: Application, body: dict[str, Any]) -> dict[str, Any]:
    """Run a command (no shell) in one container and return its output and exit code."""
    argv = body.get("argv") or _split(body["command"])
    with engine_of(_host(app)) as engine:
        info = pick_container(engine, app, body.get("container"))
        if info.state != "running":
            raise Conflict(f"Container '{info.name}' is {info.state}; exec needs it running.")
        record_audit(
            "app.exec", f"app:{app.name}", details={"container": info.name, "argv": argv[:1]}
        )
        db.session.commit()
        try:
            result = engine.exec_run(info.id, argv, timeout=body["timeout"])
        except EngineError as exc:
            raise UpstreamUnavailable(f"Exec failed: {exc.message}") from None
    return {"container": info.name, **result.__dict__}


def _split(command: str) -> list[str]:
    argv = split_command(command)
    if not argv:
        raise ValidationFailed("The command is empty.", {"command": ["empty"]})
    return argv
