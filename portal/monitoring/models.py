"""Events Spectr raises, the webhooks told about them, and the proxies Prometheus should scrape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.secrets_box import EncryptedText
from portal.core.timeutil import utcnow
from portal.extensions import db

HOST_UNREACHABLE = "host.unreachable"
CONTAINER_RESTARTING = "container.restarting"
GPU_MEMORY_HIGH = "gpu.memory_high"
DEPLOYMENT_FAILED = "deployment.failed"
EVENT_KINDS = (HOST_UNREACHABLE, CONTAINER_RESTARTING, GPU_MEMORY_HIGH, DEPLOYMENT_FAILED)
OPEN, RESOLVED = "open", "resolved"


class Event(db.Model):
    """Something an operator should know about; open while the condition lasts."""

    __tablename__ = "monitoring_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    # What the event is about, e.g. "host:3" or "operation:<id>": one open event per key.
    key: Mapped[str] = mapped_column(String(255), index=True)
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    state: Mapped[str] = mapped_column(String(16), default=OPEN, index=True)
    subject: Mapped[str] = mapped_column(String(255))
    # The project of the host or operation it is about (issue 16); None counts as `default`'s.
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True
    )
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)


class Webhook(db.Model):
    """A URL that receives events as HMAC-signed JSON POSTs."""

    __tablename__ = "monitoring_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(EncryptedText(512))
    # Empty list: every kind.
    event_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EventDelivery(db.Model):
    """One event sent (or being retried) to one webhook."""

    __tablename__ = "monitoring_event_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("monitoring_events.id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("monitoring_webhooks.id", ondelete="CASCADE"), index=True
    )
    # Which change of the event this delivery announces: "opened" or "resolved".
    transition: Mapped[str] = mapped_column(String(16))
    # A grouped delivery (many events of one kind at once): every event's id, event_id being
    # the first. None for a delivery of one event.
    event_ids: Mapped[list[int] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # delivered|retrying|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    event: Mapped[Event] = relationship()
    webhook: Mapped[Webhook] = relationship()


class ProxyInstance(db.Model):
    """A spectr-proxy seen fetching its config; where its /metrics answers."""

    __tablename__ = "monitoring_proxy_instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metrics_address: Mapped[str] = mapped_column(String(255), unique=True)  # host:port
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # The config document contract it speaks (None: a proxy from before contracts, 1.0), and
    # the portal's message when it refused that contract (portal/proxy/config_document.py).
    contract: Mapped[str | None] = mapped_column(String(32))
    refusal: Mapped[str | None] = mapped_column(Text)
