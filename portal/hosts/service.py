"""Host records and the engines that reach them. (Onboarding and bootstrap build on this.)"""

from __future__ import annotations

from sqlalchemy import select

from portal.core.errors import NotFound
from portal.engines import AgentEngine, ContainerEngine, LocalDockerEngine
from portal.extensions import db
from portal.hosts.models import LOCAL_HOST_NAME, READY, Host


def get_host(host_id: int) -> Host:
    host = db.session.get(Host, host_id)
    if host is None:
        raise NotFound(f"No host with id {host_id}.")
    return host


def list_hosts(status: str | None = None) -> list[Host]:
    query = select(Host).order_by(Host.name)
    if status:
        query = query.where(Host.status == status)
    return list(db.session.scalars(query))


def ensure_local_host() -> Host:
    """Return the Spectr node's own host row, creating it (ready, local Docker) if missing."""
    host = db.session.scalar(select(Host).filter_by(is_local=True))
    if host is None:
        host = Host(
            name=LOCAL_HOST_NAME, address="127.0.0.1", is_local=True, status=READY, ssh_user="root"
        )
        db.session.add(host)
        db.session.commit()
    return host


def engine_for(host: Host) -> ContainerEngine:
    """The ContainerEngine that reaches `host`: the local socket or the host's agent."""
    if host.is_local:
        return LocalDockerEngine()
    if not host.agent_url or not host.agent_token:
        raise NotFound(f"Host '{host.name}' has no agent yet; bootstrap it first.")
    from portal.core.pki import ca_certificate_path

    return AgentEngine(host.agent_url, host.agent_token, str(ca_certificate_path()))
