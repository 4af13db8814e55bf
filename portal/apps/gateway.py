"""Deployed model servers become replicas of the LLM gateway's models, and leave it on removal.

A replica is the host's address and the port the runtime's port is published on, read back
from the engine (a port left to the engine is only known once the container runs).
"""

from __future__ import annotations

from sqlalchemy import select

from portal.apps.models import Application
from portal.catalog.models import LlmModel, Runtime
from portal.engines import ContainerEngine, EngineError
from portal.extensions import db
from portal.hosts.models import Host
from portal.proxy import service as proxy_service
from portal.proxy.models import GatewayModel


def model_replica_url(engine: ContainerEngine, app: Application, host: Host) -> str | None:
    """The URL the gateway reaches this model server at, or None for other apps."""
    runtime = db.session.get(Runtime, app.runtime_id) if app.runtime_id else None
    if app.model_id is None or runtime is None:
        return None
    try:
        ports = engine.inspect_container(app.name).ports
    except EngineError:
        return None
    published = [p.host_port for p in ports if p.container_port == runtime.port and p.host_port]
    return f"http://{host.address}:{published[0]}" if published else None


def publish_model_replica(app: Application, url: str) -> None:
    """Add `url` to the replicas of the app's model in the gateway (created if new)."""
    model = db.session.get_one(LlmModel, app.model_id)
    existing = db.session.scalar(select(GatewayModel).filter_by(name=model.name))
    replicas = [r for r in (existing.replicas if existing else []) if r != url] + [url]
    proxy_service.upsert_model({"name": model.name, "replicas": replicas, "application_id": app.id})


def withdraw_model_replica(app: Application, url: str) -> None:
    """Take `url` out of its model's replicas; the model leaves the gateway with its last one."""
    model = db.session.get(LlmModel, app.model_id) if app.model_id else None
    existing = model and db.session.scalar(select(GatewayModel).filter_by(name=model.name))
    if not existing:
        return
    remaining = [replica for replica in existing.replicas if replica != url]
    if remaining:
        proxy_service.upsert_model({"name": existing.name, "replicas": remaining})
    else:
        proxy_service.delete_model(existing)
