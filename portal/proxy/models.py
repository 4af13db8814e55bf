"""Routes, gateway models, gateway keys, usage records and the config revision counter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.models import default_project_for_row


class ProxyRoute(db.Model):
    """Host name + path prefix -> a pool of upstream replicas."""

    __tablename__ = "proxy_routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # The project that owns it (issue 16); a new row without one lands in `default`.
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id"), index=True, default=default_project_for_row
    )
    hosts: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["*"])
    path_prefix: Mapped[str] = mapped_column(String(255), default="/")
    strip_prefix: Mapped[bool] = mapped_column(Boolean, default=False)
    upstreams: Mapped[list[str]] = mapped_column(JSON, default=list)
    strategy: Mapped[str] = mapped_column(String(32), default="round_robin")
    health_path: Mapped[str | None] = mapped_column(String(255))
    timeout_s: Mapped[float] = mapped_column(Float, default=60.0)
    retries: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GatewayModel(db.Model):
    """A model the LLM gateway serves, with the replicas that run it."""

    __tablename__ = "gateway_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    replicas: Mapped[list[str]] = mapped_column(JSON, default=list)
    upstream_model: Mapped[str | None] = mapped_column(String(255))
    strategy: Mapped[str] = mapped_column(String(32), default="least_connections")
    # Names of other gateway models tried, in order, when this one's replicas all fail.
    fallbacks: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # Set when an application deployment put it here, so removing the app removes it.
    application_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GatewayKey(db.Model):
    """An API key of the LLM gateway; only its SHA-256 is kept."""

    __tablename__ = "gateway_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The project that owns it (issue 16); a new row without one lands in `default`.
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id"), index=True, default=default_project_for_row
    )
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(24))
    models: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["*"])
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    budget_tokens: Mapped[int | None] = mapped_column(Integer)
    budget_period: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user = relationship("User")

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class UsageRecord(db.Model):
    """One gateway request, ingested in batches from the proxies' Redis stream."""

    __tablename__ = "gateway_usage"
    # A project's tokens today / this month: its quota use, summed by (project_id, at).
    __table_args__ = (Index("ix_gateway_usage_project_id_at", "project_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    key_id: Mapped[str] = mapped_column(String(40), index=True)
    user: Mapped[str] = mapped_column(String(80))
    model: Mapped[str] = mapped_column(String(128), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    replica: Mapped[str] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttfb_ms: Mapped[float] = mapped_column(Float, default=0.0)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    proxy: Mapped[str] = mapped_column(String(128), default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The project whose gateway quota the request counted against (no foreign key: records
    # outlive the project, as audit records do).
    project_id: Mapped[int | None] = mapped_column(Integer)


class ProxyConfigRevision(db.Model):
    """One row per change of anything in the config document; the newest id is its version."""

    __tablename__ = "proxy_config_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(255))
