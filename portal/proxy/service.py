"""Routes, gateway models and gateway keys; every change bumps the config revision."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select

from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, ValidationFailed
from portal.core.security import Principal
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.access import ProjectFilter, checked_in_project, every_project
from portal.proxy.config_document import notify_proxies, record_config_change
from portal.proxy.models import GatewayKey, GatewayModel, ProxyRoute

KEY_PREFIX = "sk-spectr-"


def _commit_change(action: str, target: str, details: dict[str, Any] | None = None) -> None:
    record_config_change(f"{action} {target}")
    record_audit(action, target, details=details)
    db.session.commit()
    notify_proxies()


def _get(model: type, item_id: int, what: str) -> Any:
    item = db.session.get(model, item_id)
    if item is None:
        raise NotFound(f"No {what} with id {item_id}.")
    return item


def _unique_name(model: type, name: str, what: str, exclude_id: int | None = None) -> None:
    existing = db.session.scalar(select(model).filter_by(name=name))
    if existing is not None and existing.id != exclude_id:
        raise Conflict(f"A {what} named '{name}' already exists.", {"name": ["taken"]})


def list_routes(project_ids: list[int] | None = None) -> list[ProxyRoute]:
    """Routes by name, of these projects (None: of every project)."""
    query = select(ProxyRoute).order_by(ProxyRoute.name)
    if project_ids is not None:
        query = query.where(ProxyRoute.project_id.in_(project_ids))
    return list(db.session.scalars(query))


def get_route(route_id: int) -> ProxyRoute:
    return _get(ProxyRoute, route_id, "route")


def create_route(fields: dict[str, Any]) -> ProxyRoute:
    _unique_name(ProxyRoute, fields["name"], "route")
    fields.pop("project", None)  # resolved to project_id by the API; pages add to `default`
    route = ProxyRoute(**fields)
    db.session.add(route)
    db.session.flush()
    _commit_change("proxy.route.create", f"route:{route.name}", {"upstreams": route.upstreams})
    return route


def update_route(route: ProxyRoute, fields: dict[str, Any]) -> ProxyRoute:
    if "name" in fields:
        _unique_name(ProxyRoute, fields["name"], "route", exclude_id=route.id)
    for name, value in fields.items():
        setattr(route, name, value)
    _commit_change("proxy.route.update", f"route:{route.name}", {"fields": sorted(fields)})
    return route


def delete_route(route: ProxyRoute) -> None:
    db.session.delete(route)
    _commit_change("proxy.route.delete", f"route:{route.name}")


def list_models(within: ProjectFilter = every_project) -> list[GatewayModel]:
    """Gateway models by name: those served by applications of the projects `within` lets
    by; one an operator put by hand (no application) counts as `default`'s."""
    from portal.apps.models import Application

    query = select(GatewayModel).order_by(GatewayModel.name)
    served = GatewayModel.application_id.in_(
        select(Application.id).where(within(Application.project_id))
    )
    query = query.where(or_(served, GatewayModel.application_id.is_(None) & within(None)))
    return list(db.session.scalars(query))


def visible_model(model_id: int, needed: str) -> GatewayModel:
    """The gateway model, if the caller has `needed` in the project of the application that
    serves it (none: `default`); 404 like a missing one if it cannot see that project."""
    from portal.apps.models import Application

    model = get_model(model_id)
    app = db.session.get(Application, model.application_id) if model.application_id else None
    missing = f"No gateway model with id {model_id}."
    return checked_in_project(model, app.project_id if app else None, needed, missing)


def get_model(model_id: int) -> GatewayModel:
    return _get(GatewayModel, model_id, "gateway model")


def upsert_model(fields: dict[str, Any]) -> GatewayModel:
    """Create a gateway model, or replace the replicas and aliases of one with this name."""
    if "fallbacks" in fields:
        check_fallbacks(fields["name"], fields["fallbacks"])
    model = db.session.scalar(select(GatewayModel).filter_by(name=fields["name"]))
    if model is None:
        model = GatewayModel(**fields)
        db.session.add(model)
    else:
        for name, value in fields.items():
            setattr(model, name, value)
    db.session.flush()
    _commit_change("proxy.model.upsert", f"model:{model.name}", {"replicas": model.replicas})
    return model


def delete_model(model: GatewayModel) -> None:
    """Stop serving a model; models that fell back to it no longer do."""
    referring = [m for m in list_models() if model.name in (m.fallbacks or [])]
    for other in referring:
        other.fallbacks = [name for name in other.fallbacks if name != model.name]
    db.session.delete(model)
    details = {"fallback_of": [m.name for m in referring]} if referring else None
    _commit_change("proxy.model.delete", f"model:{model.name}", details)


def check_fallbacks(name: str, fallbacks: list[str]) -> None:
    """Refuse fallbacks that repeat, name the model itself, no model (or an alias), or a cycle."""
    models = {m.name: m for m in list_models()}
    problem = None
    if len(set(fallbacks)) != len(fallbacks):
        problem = "A model is listed twice."
    elif name in fallbacks:
        problem = f"'{name}' cannot fall back to itself."
    for fallback in fallbacks:
        if problem is None and fallback not in models:
            owner = next((m.name for m in models.values() if fallback in (m.aliases or [])), None)
            problem = (
                f"'{fallback}' is an alias of '{owner}'; name the model."
                if owner
                else f"There is no gateway model named '{fallback}'."
            )
    if problem is None:
        graph = {other: m.fallbacks or [] for other, m in models.items()}
        cycle = _path_back(name, fallbacks, graph)
        if cycle:
            problem = f"The fallbacks would make a cycle: {' -> '.join(cycle)}."
    if problem is not None:
        raise ValidationFailed("Invalid fallbacks.", {"fallbacks": [problem]})


def _path_back(name: str, fallbacks: list[str], graph: dict[str, list[str]]) -> list[str]:
    """Return a chain of fallbacks from `name` that leads back to it, or []."""
    pending = [[name, fallback] for fallback in fallbacks]
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        if path[-1] == name:
            return path
        if path[-1] not in seen:
            seen.add(path[-1])
            pending += [[*path, after] for after in graph.get(path[-1], [])]
    return []


def list_keys(
    principal: Principal,
    project_ids: list[int] | None = None,
    administered: list[int] | None = None,
) -> list[GatewayKey]:
    """Gateway keys, newest first, of these projects: the caller's own and those of the
    projects it `administered` (global admins: everyone's)."""
    query = select(GatewayKey).order_by(GatewayKey.created_at.desc())
    if not principal.has_role("admin"):
        mine = GatewayKey.user_id == principal.user_id
        query = query.where(or_(mine, GatewayKey.project_id.in_(administered or [])))
    if project_ids is not None:
        query = query.where(GatewayKey.project_id.in_(project_ids))
    return list(db.session.scalars(query))


def get_key(key_id: int) -> GatewayKey:
    return _get(GatewayKey, key_id, "gateway key")


def create_key(principal: Principal, fields: dict[str, Any]) -> tuple[GatewayKey, str]:
    """Create a gateway key; the secret is returned this once and only its hash is kept."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    days = fields.pop("expires_in_days", None)
    fields.pop("project", None)  # resolved to project_id by the API; pages add to `default`
    key = GatewayKey(
        public_id="key_" + secrets.token_hex(8),
        user_id=principal.user_id,
        sha256=hashlib.sha256(secret.encode()).hexdigest(),
        prefix=secret[:16],
        expires_at=utcnow() + timedelta(days=days) if days else None,
        **fields,
    )
    db.session.add(key)
    db.session.flush()
    _commit_change("proxy.key.create", f"gateway-key:{key.public_id}", {"models": key.models})
    return key, secret


def revoke_key(key: GatewayKey) -> GatewayKey:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    _commit_change("proxy.key.revoke", f"gateway-key:{key.public_id}")
    return key
