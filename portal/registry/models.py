"""Registries Spectr knows: its own (deployed by Spectr) and external ones (Harbor, GitLab...)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.secrets_box import EncryptedText
from portal.core.timeutil import utcnow
from portal.extensions import db

SPECTR, EXTERNAL = "spectr", "external"
REGISTRY_KINDS = (SPECTR, EXTERNAL)


class Registry(db.Model):
    __tablename__ = "registries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=EXTERNAL, index=True)
    url: Mapped[str] = mapped_column(String(255))  # https://host:port
    username: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str | None] = mapped_column(EncryptedText(2048))
    ca_pem: Mapped[str | None] = mapped_column(Text)
    # Where a Spectr registry runs, so garbage collection can reach its config and storage.
    deployed_on_host_id: Mapped[int | None] = mapped_column(Integer)  # None: the Spectr node
    service_name: Mapped[str | None] = mapped_column(String(120))
    config_dir: Mapped[str | None] = mapped_column(String(255))
    storage_path: Mapped[str | None] = mapped_column(String(255))
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_check_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_check_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def address(self) -> str:
        """host:port as Docker names it in image references."""
        return self.url.split("://", 1)[-1].rstrip("/")

    @property
    def has_password(self) -> bool:
        return bool(self.password)
