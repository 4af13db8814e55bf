"""Applications and their revisions. A revision is immutable; every change adds one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.secrets_box import EncryptedText
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.models import default_project_for_row

CONTAINER, COMPOSE = "container", "compose"
APP_KINDS = (CONTAINER, COMPOSE)


class Application(db.Model):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("host_id", "name"),
        # The applications list pages through them by name.
        Index("ix_applications_name_host_id", "name", "host_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Container name (single container) or compose project name on the host.
    name: Mapped[str] = mapped_column(String(63))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    # The project that owns it (issue 16); a new row without one lands in `default`.
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id"), index=True, default=default_project_for_row
    )
    kind: Mapped[str] = mapped_column(String(16))
    latest_revision: Mapped[int] = mapped_column(Integer, default=0)
    deployed_revision: Mapped[int | None] = mapped_column(Integer)
    # running, restarting, unhealthy, exited (code), created, absent, removed, unknown
    status: Mapped[str] = mapped_column(String(32), default="absent")
    status_detail: Mapped[str | None] = mapped_column(Text)
    status_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    adopted: Mapped[bool] = mapped_column(Boolean, default=False)
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_models.id", ondelete="SET NULL")
    )
    runtime_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_runtimes.id", ondelete="SET NULL")
    )
    last_operation_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    revisions: Mapped[list[AppRevision]] = relationship(
        back_populates="app", cascade="all, delete-orphan", order_by="AppRevision.number"
    )


class AppRevision(db.Model):
    __tablename__ = "app_revisions"
    __table_args__ = (UniqueConstraint("app_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    # Container spec or {"compose": {...}}; secret env values are not here but in secret_env.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret_env: Mapped[str | None] = mapped_column(EncryptedText(16384))  # JSON object, encrypted
    gpu_indexes: Mapped[list[int]] = mapped_column(JSON, default=list)
    vram_reservation_mib: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    app: Mapped[Application] = relationship(back_populates="revisions")
