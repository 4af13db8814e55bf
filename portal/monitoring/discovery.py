"""Prometheus HTTP service discovery: the portal, every host's agent, every known proxy.

Proxies become known by fetching their config document: spectr-proxy sends
`X-Spectr-Proxy-Metrics: <host>:<port>` (its admin listener) with that request, and the portal
remembers the address. A wildcard host (0.0.0.0, ::) is replaced by the proxy's own address as
the portal saw it.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import Host, HostGpu
from portal.monitoring.models import ProxyInstance
from portal.monitoring.settings import monitoring_setting
from portal.proxy.config_document import CONTRACT_HEADER as PROXY_CONTRACT_HEADER
from portal.proxy.config_document import proxy_contract_problem

log = logging.getLogger(__name__)
ROLES = ("portal", "agent", "proxy")
PROXY_METRICS_HEADER = "X-Spectr-Proxy-Metrics"
PROXY_CONFIG_ENDPOINT = "proxy.ProxyConfig"
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$")
_WILDCARDS = {"0.0.0.0", "[::]", ""}
# A proxy polls every few seconds; writing last-seen once a minute is plenty.
_SEEN_WRITE_INTERVAL = timedelta(seconds=60)


def scrape_targets(role: str | None, portal_address: str, portal_scheme: str) -> list[dict]:
    """Return target groups in Prometheus HTTP SD format, optionally for one role only."""
    return json.loads(scrape_targets_json(role, portal_address, portal_scheme))


def scrape_targets_json(role: str | None, portal_address: str, portal_scheme: str) -> str:
    """The target groups as the JSON text Prometheus reads (what the API answers)."""
    parts = []
    if role in (None, "portal"):
        portal = _group(portal_address, "portal", {"__scheme__": portal_scheme})
        parts.append(json.dumps(portal, separators=(",", ":")))
    if role in (None, "agent"):
        agents = _agent_groups_json()
        if agents != "[]":
            parts.append(agents[1:-1])  # the groups inside the array
    if role in (None, "proxy"):
        parts.extend(json.dumps(group, separators=(",", ":")) for group in _proxy_groups())
    return "[" + ",".join(parts) + "]"


# Postgres builds the agents' groups itself: at 10,000 hosts reading rows and building the
# dictionaries to serialize took 160 ms of the answer, the database's JSON about 110 ms.
_AGENT_GROUPS_POSTGRES = text("""
SELECT coalesce(json_agg(json_build_object(
    'targets', json_build_array(address),
    'labels', json_strip_nulls(json_build_object(
        'role', 'agent', '__scheme__', 'https', 'host', name,
        'gpu_model', coalesce(models, 'none'), 'host_status', status, 'host_role', host_role))
  ) ORDER BY name), '[]')::text
FROM (
  SELECT h.name, h.status, h.labels ->> 'role' AS host_role, g.models,
         split_part(split_part(h.agent_url, '://', 2), '/', 1) AS address
  FROM hosts h
  LEFT JOIN (SELECT host_id, string_agg(DISTINCT model, ',' ORDER BY model) AS models
             FROM host_gpus GROUP BY host_id) g ON g.host_id = h.id
  WHERE h.agent_url IS NOT NULL
) agents
WHERE address <> ''
""")


def _agent_groups_json() -> str:
    if db.engine.dialect.name == "postgresql":
        return str(db.session.execute(_AGENT_GROUPS_POSTGRES).scalar_one())
    return json.dumps(_agent_groups(), separators=(",", ":"))


def _group(address: str, role: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"targets": [address], "labels": {"role": role, **labels}}


def _agent_groups() -> list[dict[str, Any]]:
    """One group per agent, from plain rows: no host or GPU objects, no labels parsed in Python.

    Prometheus asks for every target each refresh; at 10,000 hosts building objects and
    decoding every host's labels took most of the answer's time.
    """
    models: dict[int, list[str]] = {}
    gpus = select(HostGpu.host_id, HostGpu.model).distinct().order_by(HostGpu.model)
    for host_id, model in db.session.execute(gpus):
        models.setdefault(host_id, []).append(model)
    query = (
        select(Host.id, Host.name, Host.agent_url, Host.status, Host.labels["role"].as_string())
        .where(Host.agent_url.is_not(None))
        .order_by(Host.name)
    )
    groups = []
    for host_id, name, agent_url, status, host_role in db.session.execute(query):
        address = _netloc(agent_url)
        if not address:
            continue
        labels = {
            "__scheme__": "https",
            "host": name,
            "gpu_model": ",".join(models.get(host_id, ())) or "none",
            "host_status": status,
        }
        if host_role:
            labels["host_role"] = host_role
        groups.append({"targets": [address], "labels": {"role": "agent", **labels}})
    return groups


def _netloc(url: str) -> str:
    """host:port of an agent URL the portal wrote itself (https://host:port), without urlsplit."""
    _, separator, rest = url.partition("://")
    return rest.split("/", 1)[0] if separator else str(urlsplit(url).netloc)


def _proxy_groups() -> list[dict[str, Any]]:
    return [
        _group(p.metrics_address, "proxy", {"__scheme__": "http", "proxy": p.metrics_address})
        for p in recent_proxies()
    ]


def proxy_stale_seconds() -> float:
    """How long a proxy counts as running after its last config fetch."""
    return float(monitoring_setting("MONITORING_PROXY_STALE_SECONDS"))


def recent_proxies() -> list[ProxyInstance]:
    """The proxies that fetched their config lately (those announcing a metrics listener)."""
    fresh_since = utcnow() - timedelta(seconds=proxy_stale_seconds())
    return list(
        db.session.scalars(
            select(ProxyInstance)
            .where(ProxyInstance.last_seen_at >= fresh_since)
            .order_by(ProxyInstance.metrics_address)
        )
    )


def proxy_metrics_address(announced: str, remote_addr: str | None) -> str | None:
    """Turn an announced `host:port` into the address to scrape, or None when malformed."""
    match = _ADDRESS.match(announced.strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        return None
    host = match.group(1)
    if host in _WILDCARDS and remote_addr:
        host = f"[{remote_addr}]" if ":" in remote_addr else remote_addr
    return f"{host}:{match.group(2)}"


def remember_proxy(address: str, contract: str | None = None, refusal: str | None = None) -> None:
    """Record that a proxy answering metrics at `address` is alive, the config contract it
    speaks, and why the portal refused it (None when it did not)."""
    now = utcnow()
    proxy = db.session.scalar(select(ProxyInstance).filter_by(metrics_address=address))
    if proxy is None:
        db.session.add(
            ProxyInstance(
                metrics_address=address, last_seen_at=now, contract=contract, refusal=refusal
            )
        )
    elif (proxy.contract, proxy.refusal) != (contract, refusal):
        proxy.last_seen_at, proxy.contract, proxy.refusal = now, contract, refusal
    elif now - proxy.last_seen_at >= _SEEN_WRITE_INTERVAL:
        proxy.last_seen_at = now
    else:
        return
    db.session.commit()


def init_proxy_discovery(app: Flask) -> None:
    """Learn proxies from their config fetches, without touching the proxy context's code."""

    @app.after_request
    def _note_proxy(response: Any) -> Any:
        announced = request.headers.get(PROXY_METRICS_HEADER)
        fetched = request.endpoint == PROXY_CONFIG_ENDPOINT and response.status_code in (
            200, 304, 409,
        )  # fmt: skip
        address = proxy_metrics_address(announced, request.remote_addr) if announced else None
        if fetched and address:
            contract = request.headers.get(PROXY_CONTRACT_HEADER)
            try:
                remember_proxy(address, contract, proxy_contract_problem(contract))
            except SQLAlchemyError:  # the proxy must get its config even if this write fails
                db.session.rollback()
                log.warning("could not record proxy %s for service discovery", address)
        return response
