"""Usage accounting: ingest the proxies' Redis stream in batches, and aggregate it.

Proxies only XADD to `<prefix>usage`, so heavy traffic never waits on the database. The portal
reads the stream through a consumer group and acknowledges entries after the rows are
committed: a crash between the two re-delivers them, and the unique request id drops the
duplicates, so each request is counted once.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import Connection, func, or_, select
from sqlalchemy.sql.elements import True_

from portal.core.ticker import periodic_job
from portal.extensions import db
from portal.projects.access import ProjectFilter, every_project
from portal.proxy.models import GatewayKey, UsageRecord

log = logging.getLogger(__name__)
GROUP = "spectr-portal"
CONSUMER = f"{socket.gethostname()}:{os.getpid()}"
GROUPINGS = {"key": UsageRecord.key_id, "model": UsageRecord.model, "user": UsageRecord.user}


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(current_app.config["SPECTR_REDIS_URL"], decode_responses=True)


def usage_stream() -> str:
    return f"{current_app.config['SPECTR_PROXY_REDIS_PREFIX']}usage"


def ingest_usage(batch: int = 1000) -> int:
    """Move up to `batch` stream entries into the database; return how many were new."""
    if not current_app.config.get("SPECTR_REDIS_URL"):
        return 0
    import redis

    client = _redis()
    try:
        _ensure_group(client)
        entries = _read(client, "0", batch) or _read(client, ">", batch)  # own pending first
        if not entries:
            return 0
        inserted = _insert([_row(fields) for _, fields in entries])
        client.xack(usage_stream(), GROUP, *[entry_id for entry_id, _ in entries])
        return inserted
    except redis.RedisError as exc:
        log.warning("usage ingestion paused: %s", exc)
        return 0
    finally:
        client.close()


def _ensure_group(client: Any) -> None:
    import redis

    try:
        client.xgroup_create(usage_stream(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read(client: Any, start: str, batch: int) -> list[tuple[str, dict[str, str]]]:
    answer = client.xreadgroup(GROUP, CONSUMER, {usage_stream(): start}, count=batch)
    return [entry for _, entries in answer for entry in entries if entry[1]]


def _row(fields: dict[str, str]) -> dict[str, Any]:
    def number(name: str, cast: type = int) -> Any:
        try:
            return cast(fields.get(name) or 0)
        except ValueError:
            return cast(0)

    return {
        "request_id": fields.get("request_id") or f"anon-{fields.get('ts')}",
        "at": datetime.fromtimestamp(number("ts", float), UTC).replace(tzinfo=None),
        "key_id": fields.get("key_id", ""),
        "user": fields.get("user", ""),
        "model": fields.get("model", ""),
        "endpoint": fields.get("endpoint", ""),
        "replica": fields.get("replica", ""),
        "status": number("status"),
        "prompt_tokens": number("prompt_tokens"),
        "completion_tokens": number("completion_tokens"),
        "total_tokens": number("total_tokens"),
        "latency_ms": number("latency_ms", float),
        "ttfb_ms": number("ttfb_ms", float),
        "stream": fields.get("stream") == "1",
        "proxy": fields.get("proxy", ""),
        "extra": _extra(fields),
        # The project the proxy counted it against (proxies of contract 1.2 on): its id.
        "project_id": _project_id(fields.get("project", "")),
    }


def _project_id(text: str) -> int | None:
    """A project id as proxies write it; None for none (or what no project id can be)."""
    return int(text) if text.isdigit() and len(text) <= 9 else None


def _fill_projects(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give rows that name no project (from older proxies) their key's project."""
    missing = {row["key_id"] for row in rows if row["project_id"] is None}
    if not missing:
        return
    query = select(GatewayKey.public_id, GatewayKey.project_id)
    projects = dict(conn.execute(query.where(GatewayKey.public_id.in_(missing))).all())
    for row in rows:
        if row["project_id"] is None:
            row["project_id"] = projects.get(row["key_id"])


def _extra(fields: dict[str, str]) -> dict[str, Any]:
    extra: dict[str, Any] = {"tokens_source": fields.get("tokens_source", "")}
    if fields.get("fallback_from"):  # a fallback model answered for the one asked for
        extra["fallback_from"] = fields["fallback_from"]
    return extra


def _insert(rows: list[dict[str, Any]]) -> int:
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(UsageRecord).on_conflict_do_nothing(index_elements=["request_id"])
    with db.engine.begin() as conn:
        _fill_projects(conn, rows)
        return conn.execute(statement, rows).rowcount or 0


def usage_within(within: ProjectFilter) -> Any:
    """A clause on usage records: those of the gateway keys `within` lets by; a record of a
    key Spectr does not know counts as `default`'s, as any row without a project."""
    owned = within(GatewayKey.project_id)
    if isinstance(owned, True_):  # a caller who sees everything: no subquery to scan
        return owned
    known = select(GatewayKey.public_id)
    return or_(
        UsageRecord.key_id.in_(known.where(owned)),
        (~UsageRecord.key_id.in_(known)) & within(None),
    )


def usage_aggregates(
    group_by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    within: ProjectFilter = every_project,
) -> list[dict[str, Any]]:
    """Requests and tokens per key, model, user or day, optionally within a time window, of
    the keys of the projects `within` lets by."""
    column = GROUPINGS.get(group_by, func.date(UsageRecord.at))
    query = select(
        column.label("group"),
        func.count().label("requests"),
        func.sum(UsageRecord.prompt_tokens).label("prompt_tokens"),
        func.sum(UsageRecord.completion_tokens).label("completion_tokens"),
        func.sum(UsageRecord.total_tokens).label("total_tokens"),
        func.sum(func.cast(UsageRecord.status >= 400, db.Integer)).label("errors"),
        func.avg(UsageRecord.latency_ms).label("avg_latency_ms"),
    ).group_by(column)
    query = query.where(usage_within(within))
    if since:
        query = query.where(UsageRecord.at >= since)
    if until:
        query = query.where(UsageRecord.at < until)
    rows = db.session.execute(query.order_by(column)).mappings().all()
    return [{**row, "group": str(row["group"]), "errors": int(row["errors"] or 0)} for row in rows]


@periodic_job("ingest_gateway_usage", lambda app: 1.0)
def run_usage_ingestion() -> None:
    """Drain the usage stream into the database, a batch at a time."""
    while ingest_usage() >= 1000:
        pass
