"""Hosts, their GPUs, their status history and the containers seen on them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.secrets_box import EncryptedText
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.models import default_project_for_row

NEW, BOOTSTRAPPING, READY, DEGRADED, UNREACHABLE = (
    "new",
    "bootstrapping",
    "ready",
    "degraded",
    "unreachable",
)
HOST_STATUSES = (NEW, BOOTSTRAPPING, READY, DEGRADED, UNREACHABLE)
LOCAL_HOST_NAME = "spectr-node"


class Host(db.Model):
    __tablename__ = "hosts"
    # Ids are never reused on SQLite either: audit records and operations name hosts by id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The project that owns it (issue 16); a new row without one lands in `default`.
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id"), index=True, default=default_project_for_row
    )
    address: Mapped[str] = mapped_column(String(255))
    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    ssh_user: Mapped[str] = mapped_column(String(64), default="root")
    auth_method: Mapped[str] = mapped_column(String(16), default="key")  # key | password
    ssh_private_key: Mapped[str | None] = mapped_column(EncryptedText(8192))
    ssh_password: Mapped[str | None] = mapped_column(EncryptedText(1024))
    become_method: Mapped[str] = mapped_column(String(16), default="sudo")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The Spectr node itself: driven through the local Docker socket, no SSH, no agent.
    is_local: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=NEW, index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # First contact records the SSH host key (known_hosts line) and shows its fingerprint.
    host_key: Mapped[str | None] = mapped_column(Text)
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(128))
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agent_url: Mapped[str | None] = mapped_column(String(255))
    # Port the portal reaches the agent on (differs from the agent's listen port behind NAT).
    agent_port: Mapped[int] = mapped_column(Integer, default=7443, server_default="7443")
    agent_token: Mapped[str | None] = mapped_column(EncryptedText(512))
    # Kept so a re-bootstrap hands the agent the same certificate (an idempotent run).
    agent_certificate: Mapped[str | None] = mapped_column(Text)
    agent_private_key: Mapped[str | None] = mapped_column(EncryptedText(4096))
    agent_version: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    missed_checks: Mapped[int] = mapped_column(Integer, default=0)
    # Fingerprint of the containers the last sweep stored: an unchanged listing writes nothing.
    containers_digest: Mapped[str | None] = mapped_column(String(32))
    bootstrapped_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_operation_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    gpus: Mapped[list[HostGpu]] = relationship(
        back_populates="host", cascade="all, delete-orphan", order_by="HostGpu.index"
    )
    status_changes: Mapped[list[HostStatusChange]] = relationship(
        back_populates="host", cascade="all, delete-orphan", order_by="HostStatusChange.at.desc()"
    )
    containers: Mapped[list[HostContainer]] = relationship(
        back_populates="host", cascade="all, delete-orphan"
    )


class HostGpu(db.Model):
    __tablename__ = "host_gpus"
    __table_args__ = (UniqueConstraint("host_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    uuid: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128), index=True)
    memory_total_mib: Mapped[int] = mapped_column(Integer, default=0)
    memory_used_mib: Mapped[int] = mapped_column(Integer, default=0)
    driver_version: Mapped[str | None] = mapped_column(String(64))
    cuda_version: Mapped[str | None] = mapped_column(String(32))

    host: Mapped[Host] = relationship(back_populates="gpus")


class HostGpuSample(db.Model):
    """One GPU's readings at one health sweep: what the host page's charts draw.

    Kept SPECTR_GPU_HISTORY_HOURS; the sweep that writes new ones deletes the older ones.
    """

    __tablename__ = "host_gpu_samples"
    # A host's samples over a time window: the charts' one query.
    __table_args__ = (Index("ix_host_gpu_samples_host_id_at", "host_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    gpu_index: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    utilization_percent: Mapped[float | None] = mapped_column(Float)
    memory_used_mib: Mapped[int | None] = mapped_column(Integer)
    memory_total_mib: Mapped[int | None] = mapped_column(Integer)
    temperature_celsius: Mapped[float | None] = mapped_column(Float)
    power_watts: Mapped[float | None] = mapped_column(Float)


class HostStatusChange(db.Model):
    __tablename__ = "host_status_changes"
    # A host's latest changes first: its page shows 50 of however many a flapping host has.
    __table_args__ = (Index("ix_host_status_changes_host_id_at", "host_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)

    host: Mapped[Host] = relationship(back_populates="status_changes")


class HostContainer(db.Model):
    """A container last seen on a host (synced by health checks, for apps and the UI)."""

    __tablename__ = "host_containers"
    __table_args__ = (UniqueConstraint("host_id", "container_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    container_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    image: Mapped[str] = mapped_column(String(512))
    # running, exited, restarting, ...; indexed for the restarting-container detector.
    state: Mapped[str] = mapped_column(String(32), index=True)
    health: Mapped[str | None] = mapped_column(String(32))  # healthy, unhealthy, starting
    exit_code: Mapped[int | None] = mapped_column(Integer)
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Published ports: [{container_port, protocol, host_port, host_ip}].
    ports: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    # When the current run started (running containers only), as exact as the engine tells.
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    host: Mapped[Host] = relationship(back_populates="containers")


class SweepWorker(db.Model):
    """A worker process taking part in health sweeps: alive while its heartbeat is fresh.

    The live workers, sorted by id, split the hosts between them (see portal.hosts.sharding).
    """

    __tablename__ = "health_sweep_workers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The last sweep round this worker finished: what it probed and how long it took.
    last_round: Mapped[int | None] = mapped_column(BigInteger)
    last_sweep_hosts: Mapped[int] = mapped_column(Integer, default=0)
    last_sweep_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    last_shard: Mapped[str | None] = mapped_column(String(32))  # "index/count"
