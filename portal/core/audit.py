"""Audit trail: who did what, to which target, when, from where, and how it ended.

Every mutating API request is recorded by `audit_mutating_request` (registered on the app),
so no endpoint can forget; services add richer records with `record_audit`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import JSON, DateTime, Integer, Select, String, select
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.timeutil import utcnow
from portal.extensions import db

MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120), index=True)
    action: Mapped[str] = mapped_column(String(120), index=True)
    target: Mapped[str | None] = mapped_column(String(255), index=True)
    outcome: Mapped[str] = mapped_column(String(40))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The project acted in; no foreign key: the record outlives a deleted project.
    project_id: Mapped[int | None] = mapped_column(Integer, index=True)


def record_audit(
    action: str,
    target: str | None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    project_id: int | None = None,
) -> AuditEvent:
    """Add an audit record to the current transaction; the caller commits.

    Without `project_id`, the record carries the project of the resource this request was
    found to act on (portal.projects.access puts it on `g`).
    """
    if project_id is None and has_request_context():
        project_id = g.get("project_id")
    event = AuditEvent(
        actor=_actor(),
        action=action,
        target=target,
        outcome=outcome,
        source_ip=request.remote_addr if has_request_context() else None,
        request_id=g.get("request_id") if has_request_context() else None,
        details=details or {},
        project_id=project_id,
    )
    db.session.add(event)
    g.audited = True if has_request_context() else None
    return event


def _actor() -> str:
    principal = g.get("principal") if has_request_context() else None
    return principal.username if principal else "anonymous"


def audit_mutating_request(response: Response) -> Response:
    """Record every mutating API call that a service did not already record itself."""
    if request.method not in MUTATING_METHODS or g.get("audited"):
        return response
    if not request.path.startswith("/api/") or response.status_code == 401:
        return response
    outcome = "success" if response.status_code < 400 else f"failed ({response.status_code})"
    endpoint = request.endpoint or "unknown"
    db.session.rollback()  # never commit half-done work of a failed request with the record
    # The target column holds 255 characters: a longer path (a refused one, often) is cut.
    record_audit(f"{request.method} {endpoint}", request.path[:255], outcome)
    db.session.commit()
    return response


def init_audit(app: Flask) -> None:
    app.after_request(audit_mutating_request)


def audit_events_query(within: Any = None, **filters: Any) -> Select:
    """A select() of audit events matching the filters, newest first; with `within` (a
    ProjectFilter), only those of the projects it lets by."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if within is not None:
        query = query.where(within(AuditEvent.project_id))
    for name in ("actor", "action", "target", "outcome", "project_id"):
        if filters.get(name):
            query = query.where(getattr(AuditEvent, name) == filters[name])
    if filters.get("since"):
        query = query.where(AuditEvent.at >= filters["since"])
    if filters.get("until"):
        query = query.where(AuditEvent.at <= filters["until"])
    return query
