"""Applications and revisions: create, change (a new revision each time), diff, roll back,
and start the operations that deploy, remove, start, stop, restart and pull them."""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
from typing import Any

import yaml
from flask import current_app, g, has_request_context
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.apps import rules
from portal.apps.compose import parse_compose, validate_compose
from portal.apps.models import COMPOSE, CONTAINER, Application, AppRevision
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, ValidationFailed
from portal.core.operations.models import Operation
from portal.core.operations.service import create_operation
from portal.core.security import current_principal
from portal.extensions import db
from portal.hosts.service import get_host
from portal.projects import quotas, sharing
from portal.projects.access import checked

PENDING, REMOVED = "pending", "removed"
CONTAINER_ACTIONS = ("start", "stop", "restart")


def list_apps(host_id: int | None = None) -> list[Application]:
    return list(db.session.scalars(apps_query(host_id)))


def apps_query(
    host_id: int | None = None,
    host_ids: list[int] | None = None,
    project_ids: list[int] | None = None,
) -> Any:
    """A select() of applications by name, of one host or of some hosts (a page of them), of
    some projects (None: of every project)."""
    query = select(Application).order_by(Application.name, Application.host_id)
    if project_ids is not None:
        query = query.where(Application.project_id.in_(project_ids))
    if host_id:
        query = query.where(Application.host_id == host_id)
    if host_ids is not None:
        query = query.where(Application.host_id.in_(host_ids))
    return query


def application_names_on(host_id: int) -> list[str]:
    """Names of the applications recorded on a host, whatever their state."""
    query = select(Application.name).where(Application.host_id == host_id)
    return list(db.session.scalars(query.order_by(Application.name)))


def get_app(app_id: int) -> Application:
    app = db.session.get(Application, app_id)
    if app is None:
        raise NotFound(f"No application with id {app_id}.")
    return app


def visible_app(app_id: int, needed: str = "viewer") -> Application:
    """The application, if the caller has `needed` in its project: 404 like a missing one
    when the caller cannot see that project, 403 when its role there is lower."""
    return checked(get_app(app_id), needed, f"No application with id {app_id}.")


def get_revision(app: Application, number: int) -> AppRevision:
    for revision in app.revisions:
        if revision.number == number:
            return revision
    raise NotFound(f"Application '{app.name}' has no revision {number}.")


def _actor() -> str:
    principal = current_principal() if has_request_context() else None
    return principal.username if principal else "system"


def normalized_spec(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored spec of a request: a container spec, or {"compose": validated mapping}."""
    field = "compose" if kind == COMPOSE else "container"
    if body.get(field) is None:
        message = f"A {kind} application needs '{field}'."
        raise ValidationFailed(message, {field: [message]})
    if kind == COMPOSE:
        compose = body["compose"]
        if isinstance(compose, str):  # the text is kept too: the editor shows its comments again
            return {"compose": parse_compose(compose), "compose_source": compose}
        spec = {"compose": validate_compose(compose)}
        if isinstance(body.get("compose_source"), str):
            spec["compose_source"] = body["compose_source"]
        return spec
    spec = dict(body["container"])
    if spec.get("healthcheck") is None:
        spec.pop("healthcheck", None)
    return spec


def _merged_secrets(previous: AppRevision | None, body: dict[str, Any]) -> dict[str, str]:
    secrets = json.loads(previous.secret_env) if previous and previous.secret_env else {}
    for name in body.get("remove_secrets") or []:
        secrets.pop(name, None)
    return {**secrets, **(body.get("secret_env") or {})}


def create_app(body: dict[str, Any], **extra: Any) -> Application:
    """Create an application with revision 1; deploy it unless body['deploy'] is false."""
    for field in ("name", "host_id"):
        if body.get(field) in (None, ""):
            raise ValidationFailed(
                f"'{field}' is required.", {field: ["Missing data for required field."]}
            )
    host = get_host(body["host_id"])
    body = {**body, "kind": body.get("kind") or CONTAINER}
    body.pop("project", None)  # resolved to `project_id` by the API (deployable_host)
    app = Application(
        name=body["name"], host_id=host.id, kind=body["kind"], status=PENDING, **extra
    )
    return add_revision(app, body, is_new=True)


def add_revision(
    app: Application, body: dict[str, Any], is_new: bool = False, **revision_extra: Any
) -> Application:
    """Record a new revision of `app` from `body`; deploy it when asked (rules first)."""
    spec = normalized_spec(app.kind, body)
    previous = None if is_new else get_revision(app, app.latest_revision)
    secrets = _merged_secrets(previous, body)
    spec["secret_env_keys"] = sorted(secrets)
    gpus = revision_extra.pop("gpu_indexes", None)
    gpus = gpus if gpus is not None else list(spec.get("gpus") or [])
    host = get_host(app.host_id)
    if app.project_id is None:  # the host's project, or one the host is shared with
        app.project_id = sharing.project_for_new_app(host)
    if is_new:
        quotas.check_application_quota(app.project_id)
    # The latest revision's GPUs count against the project's quotas, deployed yet or not, and
    # on a shared host against the project's share of it.
    quotas.check_gpu_quotas(app.project_id, app.id, host.id, gpus)
    sharing.check_share_gpus(host, app.project_id, app.id, len(gpus))
    if body.get("deploy", True):
        rules.check_deployable(host, app, spec, gpus)
    else:
        rules.check_images(app.kind, spec)
    app.latest_revision = (app.latest_revision or 0) + 1
    revision = AppRevision(
        number=app.latest_revision,
        spec=spec,
        secret_env=json.dumps(secrets) if secrets else None,
        gpu_indexes=gpus,
        note=body.get("note", ""),
        created_by=_actor(),
        **revision_extra,
    )
    app.revisions.append(revision)
    db.session.add(app)
    action = "app.create" if is_new else "app.revise"
    record_audit(
        action,
        f"app:{app.name}",
        details={"revision": revision.number, "host": host.name},
        project_id=app.project_id,
    )
    _commit_unique(app, host.name)
    if body.get("deploy", True):
        start_operation(app, "app.deploy", {"revision": revision.number})
    return app


def _commit_unique(app: Application, host_name: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            f"An application named '{app.name}' already exists on '{host_name}'."
        ) from None


def start_operation(app: Application, kind: str, params: dict[str, Any] | None = None) -> Operation:
    """Create the operation that acts on `app` and remember it as the app's last one."""
    host = get_host(app.host_id)
    operation, _ = create_operation(
        kind,
        {"app_id": app.id, **(params or {})},
        target=f"app:{app.name}@{host.name}",
        project_id=app.project_id,
        requested_by=current_principal() if has_request_context() else None,
        request_id=g.get("request_id") if has_request_context() else None,
    )
    app = get_app(app.id)
    app.last_operation_id = operation.id
    db.session.commit()
    return operation


def deploy(app: Application, number: int | None = None) -> Operation:
    """Deploy a revision (the latest by default) after checking the rules."""
    revision = get_revision(app, number or app.latest_revision)
    host = get_host(app.host_id)
    rules.check_deployable(host, app, revision.spec, revision.gpu_indexes or [])
    quotas.check_gpu_quotas(app.project_id, app.id, host.id, revision.gpu_indexes or [])
    sharing.check_share_gpus(host, app.project_id, app.id, len(revision.gpu_indexes or []))
    return start_operation(app, "app.deploy", {"revision": revision.number})


def rollback(app: Application, number: int) -> Operation:
    """Copy an older revision into a new one and deploy it; history stays linear."""
    older = get_revision(app, number)
    if number == app.latest_revision:
        raise Conflict(f"Revision {number} is already the latest; nothing to roll back to.")
    host = get_host(app.host_id)
    rules.check_deployable(host, app, older.spec, older.gpu_indexes or [])
    quotas.check_gpu_quotas(app.project_id, app.id, host.id, older.gpu_indexes or [])
    sharing.check_share_gpus(host, app.project_id, app.id, len(older.gpu_indexes or []))
    app.latest_revision += 1
    app.revisions.append(
        AppRevision(
            number=app.latest_revision,
            spec=dict(older.spec),
            secret_env=older.secret_env,
            gpu_indexes=list(older.gpu_indexes or []),
            vram_reservation_mib=older.vram_reservation_mib,
            note=f"rollback to revision {number}",
            created_by=_actor(),
        )
    )
    record_audit(
        "app.rollback", f"app:{app.name}", details={"to": number, "revision": app.latest_revision}
    )
    db.session.commit()
    return start_operation(app, "app.deploy", {"revision": app.latest_revision})


def act(app: Application, action: str) -> Operation:
    """Start, stop, restart, pull or remove the application (an operation)."""
    if action in (*CONTAINER_ACTIONS, "pull"):
        rules.check_host_ready(get_host(app.host_id))
    if action in CONTAINER_ACTIONS:
        return start_operation(app, "app.container_action", {"action": action})
    return start_operation(app, f"app.{action}")


def delete_app(app: Application) -> None:
    """Forget an application that is not on its host (removed, or never deployed)."""
    if app.status not in (REMOVED, PENDING, "absent"):
        raise Conflict(f"Application '{app.name}' is {app.status}; remove it from its host first.")
    record_audit("app.delete", f"app:{app.name}")
    db.session.delete(app)
    db.session.commit()


def revision_document(revision: AppRevision) -> dict[str, Any]:
    """A revision as shown and diffed: secret values replaced by a keyed fingerprint."""
    secrets = json.loads(revision.secret_env) if revision.secret_env else {}
    key = current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    masked = {
        name: "<secret "
        + hmac.new(key, f"{name}={value}".encode(), hashlib.sha256).hexdigest()[:10]
        + ">"
        for name, value in sorted(secrets.items())
    }
    hidden = ("secret_env_keys", "compose_source")  # the parsed compose document is diffed
    spec = {k: v for k, v in revision.spec.items() if k not in hidden}
    return {**spec, "secret_env": masked, "gpu_indexes": revision.gpu_indexes or []}


def diff_revisions(app: Application, old: int, new: int) -> dict[str, Any]:
    """Unified diff of two revisions' documents (YAML), and which top-level keys changed."""
    before = revision_document(get_revision(app, old))
    after = revision_document(get_revision(app, new))
    lines = difflib.unified_diff(
        yaml.safe_dump(before, sort_keys=True).splitlines(),
        yaml.safe_dump(after, sort_keys=True).splitlines(),
        f"revision {old}",
        f"revision {new}",
        lineterm="",
    )
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {
        "from_revision": old,
        "to_revision": new,
        "changed_keys": changed,
        "diff": "\n".join(lines),
    }


def gpu_reservations_mib(host_id: int) -> dict[int, int]:
    """GPU index -> MiB Spectr's live deployments on the host reserved (their VRAM estimates)."""
    reserved: dict[int, int] = {}
    for app in list_apps(host_id):
        if app.status == REMOVED or app.deployed_revision is None:
            continue
        revision = next((r for r in app.revisions if r.number == app.deployed_revision), None)
        if revision is None or not revision.vram_reservation_mib or not revision.gpu_indexes:
            continue
        for index in revision.gpu_indexes:
            reserved[index] = reserved.get(index, 0) + revision.vram_reservation_mib
    return reserved


def revision_images(app: Application) -> list[str]:
    """Images the application's latest revision runs."""
    from portal.apps.compose import service_images

    revision = get_revision(app, app.latest_revision)
    if app.kind == COMPOSE:
        return service_images(revision.spec["compose"])
    return [revision.spec["image"]] if revision.spec.get("image") else []
