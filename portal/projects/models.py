"""Projects, their members with a role each, and their quotas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.timeutil import utcnow
from portal.extensions import db

DEFAULT_PROJECT = "default"


class Project(db.Model):
    """A tenant of the fleet: it owns hosts, applications, gateway keys and routes."""

    __tablename__ = "projects"
    # Audit records keep a project's id after it is deleted: an id is never handed out twice.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Quotas; None is no limit. GPUs count the devices the project's applications hold.
    gpu_limit: Mapped[int | None] = mapped_column(Integer)
    application_limit: Mapped[int | None] = mapped_column(Integer)
    # GPU model (as the host's facts name it) -> devices of that model; a model not named here
    # is limited by `gpu_limit` alone.
    gpu_model_limits: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # The memory of the devices the project's applications hold (whole devices: a GPU is held
    # by one application at a time).
    gpu_memory_limit_mib: Mapped[int | None] = mapped_column(Integer)
    # Gateway quotas, shared by all the project's keys and enforced by the proxy (in Redis).
    gateway_rpm_limit: Mapped[int | None] = mapped_column(Integer)
    gateway_tokens_per_day_limit: Mapped[int | None] = mapped_column(BigInteger)
    gateway_tokens_per_month_limit: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    members: Mapped[list[ProjectMember]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )


class ProjectMember(db.Model):
    """A user's role (viewer, operator or admin) in one project."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="members")
    user = relationship("User")


def default_project_id(connection: Connection) -> int:
    """The id of the `default` project, created when it is missing (an emptied database)."""
    table = Project.__table__
    found = connection.scalar(select(table.c.id).where(table.c.name == DEFAULT_PROJECT))
    if found is not None:
        return found
    values = {"name": DEFAULT_PROJECT, "description": "", "created_at": utcnow()}
    return connection.execute(insert(table).values(**values)).inserted_primary_key[0]


def default_project_for_row(context: Any) -> int:
    """Column default of `project_id`: a row inserted without one (by the ORM or in bulk)
    lands in `default`."""
    return default_project_id(context.connection)


class HostShare(db.Model):
    """A host of one project lent to another: its members see the host (read-only) and
    deploy their own applications on it, holding at most `gpu_limit` of its GPUs."""

    __tablename__ = "host_shares"
    __table_args__ = (UniqueConstraint("host_id", "project_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    # GPUs of the host the project's applications may hold together; None: no limit but the
    # host's own (and the project's quota).
    gpu_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship()
