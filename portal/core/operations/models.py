"""Operation rows and their append-only log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.timeutil import utcnow
from portal.extensions import db

ACCEPTED, QUEUED, RUNNING = "accepted", "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
STATES = (ACCEPTED, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (ACCEPTED, QUEUED, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)
CALLBACK_PENDING, CALLBACK_DELIVERED = "pending", "delivered"


class Operation(db.Model):
    __tablename__ = "operations"
    __table_args__ = (
        UniqueConstraint("requested_by_id", "idempotency_key"),
        Index("ix_operations_state_lease", "state", "lease_expires_at"),
        Index("ix_operations_callback_due", "callback_state", "callback_due_at"),
        # Lists filtered by state, newest first (the operations page, the dashboard).
        Index("ix_operations_state_created_at", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255), index=True)
    # The project of the host, application, route or key it acts on (issue 16); None for the
    # fleet's own work (registry, catalog, backups), which counts as `default`'s.
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True
    )
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=ACCEPTED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    # The callback is an outbox row: "pending" is written with the final state, in the same
    # UPDATE, so a worker killed right after finishing cannot lose it; recovery re-sends what is
    # due. `callback_due_at` is when the next attempt may start (a claim pushes it forward).
    callback_state: Mapped[str | None] = mapped_column(String(32))
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_due_at: Mapped[datetime | None] = mapped_column(DateTime)
    request_id: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Retention deletes by it; the duration histogram reads what finished since its watermark.
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)

    requested_by = db.relationship("User", lazy="select")
    # Set by whoever creates the row and already knows the caller's name: answering an accept
    # then needs no query for the user, which was an eighth of an accept's CPU.
    requester_name_hint = None

    @property
    def requester_name(self) -> str | None:
        """The requesting user's name, or None for system operations and deleted users."""
        if self.requester_name_hint is not None:
            return self.requester_name_hint
        return self.requested_by.username if self.requested_by else None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class OperationLogLine(db.Model):
    __tablename__ = "operation_log_lines"
    # Reading and following a log: one operation's lines after an id, in id order, without a
    # sort (a fan-out's log has tens of thousands of lines among a million).
    __table_args__ = (Index("ix_operation_log_lines_operation_id_id", "operation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(Text)
