"""The config document spectr_proxy runs on (schema: proxy/config.schema.json).

The portal is its only author: every change of a route, gateway model or key adds a revision
row and publishes `<prefix>proxy:config` on Redis, so running proxies refetch within a second
(they also poll, in case a notification is lost).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from portal.core.timeutil import isoformat, utcnow
from portal.extensions import db
from portal.projects.models import Project
from portal.proxy.models import GatewayKey, GatewayModel, ProxyConfigRevision, ProxyRoute

log = logging.getLogger(__name__)

# The config document contract (MAJOR.MINOR) this portal serves, sent as the
# Spectr-Proxy-Contract header of the document (a header, not a field: proxies from before
# contracts refuse unknown fields). A proxy names the contract it speaks in the same header of
# its fetch; one of a major not listed here is refused with 409 and shown on the proxy page.
CONTRACT_HEADER = "Spectr-Proxy-Contract"
PROXY_CONFIG_CONTRACT = "1.2"
PROXY_CONTRACT_MAJORS = (1,)
# Projects (their gateway quotas, and each key's project) came with contract 1.2: a proxy of an
# earlier minor refuses unknown fields, so it gets the document without them (and enforces no
# project quota).
PROJECTS_SINCE = (1, 2)


def proxy_contract_problem(reported: str | None) -> str | None:
    """Why the portal refuses a proxy speaking this contract; None when it serves it."""
    contract = reported or "1.0"  # proxies from before contracts send none
    major, _, minor = contract.partition(".")
    if major.isdigit() and minor.isdigit() and int(major) in PROXY_CONTRACT_MAJORS:
        return None
    serves = ", ".join(f"{m}.x" for m in PROXY_CONTRACT_MAJORS)
    return (
        f"Incompatible proxy: it speaks config document contract {contract[:20]}, this portal "
        f"serves {serves}. Install the spectr-proxy of this portal's version."
    )


def _contract(reported: str | None) -> tuple[int, int]:
    major, _, minor = (reported or "1.0").partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (1, 0)


def config_document(contract: str | None = None) -> dict[str, Any]:
    """Build the whole document for a proxy speaking `contract` (None: 1.0), with its version
    and an ETag over its content."""
    models = [model for model in _all(GatewayModel) if model.replicas]
    fallbacks = _served_fallbacks(models)
    keys = [key for key in _all(GatewayKey) if key.is_active(utcnow())]
    with_projects = _contract(contract) >= PROJECTS_SINCE
    document: dict[str, Any] = {
        "version": db.session.scalar(select(func.max(ProxyConfigRevision.id))) or 0,
        "pools": [_route_pool(route) for route in _all(ProxyRoute)],
        "routes": [_route(route) for route in _all(ProxyRoute)],
        "models": [_model(model, fallbacks[model.name]) for model in models],
        "keys": [_key(key, with_projects) for key in keys],
    }
    if with_projects:
        document["projects"] = _projects({key.project_id for key in keys})
    document["etag"] = content_etag(document)
    return document


def content_etag(document: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in document.items() if k != "etag"}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _all(model: type) -> list[Any]:
    return list(db.session.scalars(select(model).order_by(model.id)))


def _route_pool(route: ProxyRoute) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "name": f"route-{route.name}",
        "strategy": route.strategy,
        "replicas": [{"url": url} for url in route.upstreams],
    }
    if route.health_path:
        pool["health_check"] = {"path": route.health_path}
    return pool


def _route(route: ProxyRoute) -> dict[str, Any]:
    return {
        "name": route.name,
        "hosts": route.hosts or ["*"],
        "path_prefix": route.path_prefix,
        "strip_prefix": route.strip_prefix,
        "pool": f"route-{route.name}",
        "timeout_s": route.timeout_s,
        "retries": route.retries,
    }


def _model(model: GatewayModel, fallbacks: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": model.name,
        "aliases": model.aliases or [],
        "replicas": [{"url": url} for url in model.replicas],
        "strategy": model.strategy,
    }
    if model.upstream_model:
        entry["upstream_model"] = model.upstream_model
    if fallbacks:
        entry["fallbacks"] = fallbacks
    return entry


def _served_fallbacks(models: list[GatewayModel]) -> dict[str, list[str]]:
    """Each served model's fallbacks that are served too (a model without replicas is not).

    The API refuses cycles, but two changes at once could still make one; the proxy would then
    refuse the whole document, so the fallback that closes a cycle is left out (and logged).
    """
    served = {model.name for model in models}
    kept: dict[str, list[str]] = {}
    for model in models:
        kept[model.name] = []
        for name in model.fallbacks or []:
            if name not in served:
                continue
            if _reaches(name, model.name, kept):
                log.warning("fallback %s -> %s would close a cycle; left out", model.name, name)
                continue
            kept[model.name].append(name)
    return kept


def _reaches(start: str, goal: str, fallbacks: dict[str, list[str]]) -> bool:
    pending, seen = [start], set()
    while pending:
        name = pending.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            pending += fallbacks.get(name, [])
    return False


def _projects(project_ids: set[int]) -> list[dict[str, Any]]:
    """The projects of the keys, with the gateway quotas all of a project's keys share."""
    query = select(Project).where(Project.id.in_(project_ids)).order_by(Project.id)
    return [
        {
            "id": str(project.id),
            "name": project.name,
            "rpm": project.gateway_rpm_limit,
            "tokens_per_day": project.gateway_tokens_per_day_limit,
            "tokens_per_month": project.gateway_tokens_per_month_limit,
        }
        for project in db.session.scalars(query)
    ]


def _key(key: GatewayKey, with_project: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": key.public_id,
        "sha256": key.sha256,
        "user": key.user.username if key.user else "",
        "models": key.models or ["*"],
        "expires_at": isoformat(key.expires_at),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget": None,
    }
    if key.budget_tokens and key.budget_period:
        entry["budget"] = {"tokens": key.budget_tokens, "period": key.budget_period}
    if with_project:
        entry["project"] = str(key.project_id)
    return entry


def record_config_change(reason: str) -> None:
    """Add a revision to the current transaction; call `notify_proxies` after the commit."""
    db.session.add(ProxyConfigRevision(reason=reason[:255]))


def notify_proxies() -> None:
    """Tell running proxies to refetch the document (they poll too, so a failure is logged)."""
    url = current_app.config.get("SPECTR_REDIS_URL")
    if not url:
        return
    import redis

    channel = f"{current_app.config['SPECTR_PROXY_REDIS_PREFIX']}proxy:config"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        client.publish(channel, "changed")
        client.close()
    except redis.RedisError:
        log.warning("could not notify proxies on %s; they will poll", channel)
