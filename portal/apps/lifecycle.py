"""What runs inside operations: deploy and remove through the app role, start / stop /
restart / pull through the host's engine, and status read back from the engine."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from portal.apps import gateway
from portal.apps.models import COMPOSE, Application, AppRevision
from portal.apps.spec import role_variables
from portal.automation.provisioner import run_playbook
from portal.core.errors import NotFound, UpstreamUnavailable
from portal.core.operations.kinds import (
    OperationCancelled,
    OperationContext,
    PermanentError,
    TransientError,
)
from portal.core.timeutil import utcnow
from portal.engines import ContainerEngine, ContainerInfo, EngineError
from portal.engines import errors as engine_errors
from portal.extensions import db
from portal.hosts.models import Host
from portal.hosts.relay import open_engine as engine_of
from portal.hosts.service import engine_for, inventory_host

REMOVED, PENDING = "removed", "pending"


def app_containers(engine: ContainerEngine, app: Application) -> list[ContainerInfo]:
    """The application's containers: the named container, or the compose project's."""
    if app.kind == COMPOSE:
        return engine.list_containers(labels={"com.docker.compose.project": app.name})
    try:
        return [engine.inspect_container(app.name)]
    except engine_errors.NotFound:
        return []


def container_status(info: ContainerInfo) -> str:
    """One container's status as people read it."""
    if info.state == "running" and info.health == "unhealthy":
        return "unhealthy"
    if info.state == "exited":
        return f"exited ({info.exit_code})" if info.exit_code is not None else "exited"
    return info.state or "unknown"


def summarize(containers: list[ContainerInfo]) -> tuple[str, str]:
    """Overall status (the worst container's) and a per-container detail line."""
    if not containers:
        return "absent", "no container found"
    statuses = [container_status(info) for info in containers]
    rank = ["running", "created", "restarting", "unhealthy", "paused", "exited", "dead"]
    worst = max(
        statuses, key=lambda s: rank.index(s.split(" ")[0]) if s.split(" ")[0] in rank else 99
    )
    detail = ", ".join(
        f"{info.name}: {status}" for info, status in zip(containers, statuses, strict=True)
    )
    return worst, detail


def refresh_status(app: Application) -> Application:
    """Read the application's containers from its host's engine and store the status."""
    if app.status == REMOVED:
        return app
    host = db.session.get_one(Host, app.host_id)
    try:
        with engine_of(host) as engine:
            app.status, app.status_detail = summarize(app_containers(engine, app))
    except (EngineError, UpstreamUnavailable, NotFound) as exc:
        app.status, app.status_detail = "unknown", getattr(exc, "message", str(exc))
    app.status_checked_at = utcnow()
    db.session.commit()
    return app


def _load(app_id: int) -> tuple[Application, Host]:
    app = db.session.get(Application, app_id)
    if app is None:
        raise PermanentError(f"Application {app_id} no longer exists.")
    return app, db.session.get_one(Host, app.host_id)


def _run(ctx: OperationContext, playbook: str, host: Host, variables: dict[str, Any]) -> bool:
    """Run a playbook on one host; return whether it changed anything."""
    result = run_playbook(
        playbook,
        hosts=[inventory_host(host)],
        extravars=variables,
        log=ctx.log,
        cancel_event=ctx.cancel_event,
    )
    if result.status == "canceled":
        raise OperationCancelled()
    outcome = result.hosts.get(host.name)
    if outcome and outcome.unreachable:
        raise TransientError(f"Host '{host.name}' is unreachable: {outcome.unreachable_message}")
    if not result.succeeded:
        reason = (outcome.failure_message if outcome else None) or f"playbook ended {result.status}"
        raise PermanentError(f"{playbook} failed on '{host.name}': {reason}")
    return bool(outcome and outcome.changed)


def deploy_revision(ctx: OperationContext) -> dict[str, Any]:
    """Deploy one revision with spectr.core.deploy_app (declarative: twice changes nothing)."""
    app, host = _load(ctx.params["app_id"])
    revision = _revision(app, ctx.params["revision"])
    secrets = json.loads(revision.secret_env) if revision.secret_env else {}
    variables = role_variables(app.name, app.kind, revision.number, revision.spec, secrets)
    if app.kind != COMPOSE:
        variables.update(_registry_login(revision.spec["image"]))
    _ensure_model_files(ctx, host, revision.spec)
    ctx.progress(0.1, f"deploying revision {revision.number} of {app.name} to {host.name}")
    changed = _run(ctx, "spectr.core.deploy_app", host, variables)
    app.deployed_revision, app.status = revision.number, "deployed"  # no longer "removed"
    refresh_status(app)
    _join_gateway(ctx, app, host)
    return {"app": app.name, "revision": revision.number, "changed": changed, "status": app.status}


def _ensure_model_files(ctx: OperationContext, host: Host, spec: dict[str, Any]) -> None:
    """A model imported into Spectr is fetched onto the host before its server starts."""
    from portal.artifacts import distribution, serving

    digest = (spec.get("labels") or {}).get(serving.DIGEST_LABEL)
    if not digest:
        return
    mounted = next(v.split(":", 1)[0] for v in spec["volumes"] if v.endswith(":ro"))
    distribution.ensure_on_host(ctx, digest, host, mounted)


def _model_replica(app: Application, host: Host) -> str | None:
    if app.model_id is None:
        return None
    try:
        with engine_of(host) as engine:
            return gateway.model_replica_url(engine, app, host)
    except (UpstreamUnavailable, NotFound):  # no engine to ask: the gateway learns nothing
        return None


def _join_gateway(ctx: OperationContext, app: Application, host: Host) -> None:
    """A deployed model server becomes a replica of its model in the LLM gateway."""
    replica = _model_replica(app, host)
    if replica:
        gateway.publish_model_replica(app, replica)
        ctx.log(f"The LLM gateway now sends requests for this model to {replica}.")


def _registry_login(image: str) -> dict[str, Any]:
    """Log the host in to Spectr's registry when the image lives there (no_log in the role)."""
    from portal.registry.service import app_registry_login

    login = app_registry_login(image)
    return {"app_registry_login": login} if login else {}


def remove_application(ctx: OperationContext) -> dict[str, Any]:
    """Remove the application's containers (and compose project) from its host."""
    app, host = _load(ctx.params["app_id"])
    variables = {"app_name": app.name, "app_kind": app.kind}
    replica = _model_replica(app, host)  # read before the container is gone
    changed = _run(ctx, "spectr.core.remove_app", host, variables)
    if replica:
        gateway.withdraw_model_replica(app, replica)
        ctx.log(f"The LLM gateway no longer sends requests to {replica}.")
    app.status, app.status_detail, app.deployed_revision = REMOVED, "removed from the host", None
    app.status_checked_at = utcnow()
    db.session.commit()
    return {"app": app.name, "changed": changed, "status": REMOVED}


def container_action(ctx: OperationContext) -> dict[str, Any]:
    """Start, stop or restart every container of the application through the engine."""
    app, host = _load(ctx.params["app_id"])
    action = ctx.params["action"]
    done = []
    with _engine_or_retry(host) as engine:
        containers = _engine_step(lambda: app_containers(engine, app))
        if not containers:
            raise PermanentError(f"Application '{app.name}' has no container on '{host.name}'.")
        for info in containers:
            ctx.raise_if_cancelled()
            _engine_step(lambda info=info: getattr(engine, f"{action}_container")(info.id))
            ctx.log(f"{action}: {info.name}")
            done.append(info.name)
    refresh_status(app)
    return {"app": app.name, "action": action, "containers": done, "status": app.status}


def pull_images(ctx: OperationContext) -> dict[str, Any]:
    """Pull the images of the application's latest revision onto its host."""
    app, host = _load(ctx.params["app_id"])
    spec = _revision(app, app.latest_revision).spec
    images = _images_of(app.kind, spec)
    with _engine_or_retry(host) as engine:
        for number, image in enumerate(images, 1):
            ctx.progress(number / (len(images) + 1), f"pulling {image}")
            info = _engine_step(lambda image=image: engine.pull_image(image))
            ctx.log(f"pulled {image} ({info.id[:19]})")
    return {"app": app.name, "images": images}


def _images_of(kind: str, spec: dict[str, Any]) -> list[str]:
    from portal.apps.compose import service_images

    return service_images(spec["compose"]) if kind == COMPOSE else [spec["image"]]


def _revision(app: Application, number: int) -> AppRevision:
    for revision in app.revisions:
        if revision.number == number:
            return revision
    raise PermanentError(f"Application '{app.name}' has no revision {number}.")


def _engine_or_retry(host: Host) -> ContainerEngine:
    try:
        return engine_for(host)
    except EngineError as exc:
        raise TransientError(exc.message) from None


def _engine_step(call: Any) -> Any:
    """Run one engine call; an unreachable engine is worth a retry, a refusal is not."""
    try:
        return call()
    except engine_errors.Unavailable as exc:
        raise TransientError(exc.message) from None
    except EngineError as exc:
        raise PermanentError(exc.message) from None


def apply_health_checks(
    apps: list[Application], commit: bool = True, seen_at: datetime | None = None
) -> None:
    """Take each application's status from the containers the host health checks last saw.

    The hosts context's health sweep stores every host's containers (HostContainer), the
    Spectr node's included, stamped with the time they changed; a sweep calls this with the
    time it listed them (`seen_at`: every row is true as of then, changed or not). When that is
    newer than the application's status, the rows win. An application with no container on a
    host swept after its status was read is absent (someone removed it, or the engine lost it).
    """
    from portal.hosts.models import HostContainer

    live = [app for app in apps if app.status != REMOVED]
    host_ids = {app.host_id for app in live}
    if not host_ids:
        return
    swept: dict[int, datetime | None] = {}
    if seen_at is None:
        host_ids, swept = _hosts_newer_than_their_apps(live, host_ids)
    rows_by_host: dict[int, list[Any]] = {host_id: [] for host_id in host_ids}
    if host_ids:  # one query for the page's hosts, not one per application
        columns = (
            HostContainer.host_id, HostContainer.container_id, HostContainer.name,
            HostContainer.image, HostContainer.state, HostContainer.labels,
            HostContainer.exit_code, HostContainer.health, HostContainer.updated_at,
        )  # fmt: skip
        query = select(*columns).where(HostContainer.host_id.in_(host_ids))
        for row in db.session.execute(query):
            rows_by_host[row.host_id].append(row)
    changed = False
    for app in live:
        if app.host_id not in rows_by_host:
            continue
        mine = [r for r in rows_by_host[app.host_id] if _covers(app, r.name, r.labels or {})]
        seen = seen_at or (max(row.updated_at for row in mine) if mine else swept.get(app.host_id))
        if seen is None or (app.status_checked_at and seen <= app.status_checked_at):
            continue
        if not mine and app.status in (PENDING, "absent"):
            continue  # not deployed yet, or already known to be gone
        app.status, app.status_detail = summarize([_as_info(row) for row in mine])
        app.status_checked_at = seen
        changed = True
    if changed and commit:
        db.session.commit()


def _hosts_newer_than_their_apps(
    live: list[Application], host_ids: set[int]
) -> tuple[set[int], dict[int, datetime | None]]:
    """The hosts a sweep saw, or whose containers changed, after one of their applications'
    status was taken, with when each was last seen: the only ones whose rows are read."""
    from portal.hosts.models import Host, HostContainer

    latest = dict(
        db.session.execute(
            select(HostContainer.host_id, func.max(HostContainer.updated_at))
            .where(HostContainer.host_id.in_(host_ids))
            .group_by(HostContainer.host_id)
        ).all()
    )
    swept = dict(
        db.session.execute(select(Host.id, Host.last_seen_at).where(Host.id.in_(host_ids))).all()
    )
    stale = set()
    for app in live:
        news = [t for t in (latest.get(app.host_id), swept.get(app.host_id)) if t is not None]
        if news and (app.status_checked_at is None or max(news) > app.status_checked_at):
            stale.add(app.host_id)
    return stale, swept


def seen_containers(apps: list[Application]) -> dict[int, list[Any]]:
    """Each application's containers as the last health sweep saw them (HostContainer rows)."""
    from portal.hosts.models import HostContainer

    rows = db.session.scalars(
        select(HostContainer)
        .where(HostContainer.host_id.in_({app.host_id for app in apps}))
        .order_by(HostContainer.name)
    ).all()
    return {
        app.id: [
            row
            for row in rows
            if row.host_id == app.host_id and _covers(app, row.name, row.labels or {})
        ]
        for app in apps
    }


def follow_host_containers(listings: dict[int, list[ContainerInfo]], seen_at: datetime) -> None:
    """After a sweep: the applications on these hosts take the state of their containers, as
    the sweep listed them at `seen_at`.

    Works from the listings in memory and writes only the applications whose status changed,
    in one executemany: a first sweep of 10,000 hosts spent 6.6 s reading its own container
    rows back and flushing 10,000 ORM objects.
    """
    from portal.hosts.container_sync import chunks, exit_code_of, health_of

    columns = (
        Application.id, Application.host_id, Application.name, Application.kind,
        Application.status, Application.status_detail, Application.status_checked_at,
    )  # fmt: skip
    updates = []
    for chunk in chunks(list(listings)):
        query = select(*columns).where(
            Application.host_id.in_(chunk), Application.status != REMOVED
        )
        for app in db.session.execute(query):
            if app.status_checked_at and seen_at <= app.status_checked_at:
                continue  # read from the engine after these containers were listed
            mine = [
                replace(info, health=health_of(info), exit_code=exit_code_of(info))
                for info in listings[app.host_id]
                if _covers(app, info.name, info.labels or {})
            ]
            if not mine and app.status in (PENDING, "absent"):
                continue  # not deployed yet, or already known to be gone
            status, detail = summarize(mine)
            if (status, detail) != (app.status, app.status_detail) or not app.status_checked_at:
                updates.append(
                    {"id": app.id, "status": status, "status_detail": detail,
                     "status_checked_at": seen_at}
                )  # fmt: skip
    if updates:
        db.session.execute(update(Application), updates)


def _as_info(row: Any) -> ContainerInfo:
    return ContainerInfo(
        row.container_id,
        row.name,
        row.image,
        row.state,
        row.labels or {},
        exit_code=row.exit_code,
        health=row.health,
    )


def _covers(app: Any, name: str, labels: dict[str, str]) -> bool:
    if app.kind == COMPOSE:
        return labels.get("com.docker.compose.project") == app.name
    return name == app.name


@dataclass(frozen=True)
class HostApplications:
    """What Spectr's applications on one host are made of: container names, compose projects."""

    names: frozenset[str] = frozenset()
    projects: frozenset[str] = frozenset()

    def own(self, name: str, labels: dict[str, str] | None) -> bool:
        """Whether a container with this name and these labels belongs to one of them."""
        project = (labels or {}).get("com.docker.compose.project")
        return name in self.names or (project is not None and project in self.projects)


def applications_by_host(host_ids: Iterable[int]) -> dict[int, HostApplications]:
    """Each host's applications (removed ones left out), for telling Spectr's containers apart."""
    names: dict[int, set[str]] = {}
    projects: dict[int, set[str]] = {}
    rows = db.session.execute(
        select(Application.host_id, Application.name, Application.kind).where(
            Application.host_id.in_(list(host_ids)), Application.status != REMOVED
        )
    )
    for host_id, name, kind in rows:
        (projects if kind == COMPOSE else names).setdefault(host_id, set()).add(name)
    return {
        host_id: HostApplications(
            frozenset(names.get(host_id, ())), frozenset(projects.get(host_id, ()))
        )
        for host_id in set(names) | set(projects)
    }
