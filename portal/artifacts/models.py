"""Rows of model artifacts: a model's revisions, their files, and the hosts holding them.

The bytes live in Spectr's registry (one OCI artifact per revision, one layer per file); the
database keeps what people and placement ask about: files with digests and sizes, the facts
read from them, and which host has which revision in its cache.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.secrets_box import EncryptedText
from portal.core.timeutil import utcnow
from portal.extensions import db

if TYPE_CHECKING:
    from portal.catalog.models import LlmModel
    from portal.hosts.models import Host

PRESENT, FAILED = "present", "failed"
HUGGINGFACE, S3 = "huggingface", "s3"
SOURCE_KINDS = (HUGGINGFACE, S3)


class ModelSource(db.Model):
    """An internal mirror models are imported from: a Hugging Face-compatible endpoint or an
    S3-compatible bucket service. Its credentials are encrypted at rest and never shown."""

    __tablename__ = "model_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(512))
    # Hugging Face: token holds the access token. S3: access key id and secret access key.
    token: Mapped[str | None] = mapped_column(EncryptedText(2048))
    access_key: Mapped[str | None] = mapped_column(EncryptedText(1024))
    secret_key: Mapped[str | None] = mapped_column(EncryptedText(2048))
    region: Mapped[str | None] = mapped_column(String(64))
    ca_pem: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or (self.access_key and self.secret_key))


class ModelRevision(db.Model):
    """One imported set of a model's files, stored as one OCI artifact."""

    __tablename__ = "model_revisions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_models.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    repository: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str] = mapped_column(String(128))
    manifest_digest: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(32))
    # What was read from the files (model_facts.ModelFacts.to_dict()) and where they came from.
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    operation_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    model: Mapped[LlmModel] = relationship()
    files: Mapped[list[ModelFile]] = relationship(
        back_populates="revision", cascade="all, delete-orphan", order_by="ModelFile.path"
    )

    @property
    def folder_name(self) -> str:
        """The folder a host's cache keeps this revision in: sha256-<manifest hex>."""
        return self.manifest_digest.replace(":", "-")


class ModelFile(db.Model):
    """One file of a revision: its path inside the model folder, sha256 and size."""

    __tablename__ = "model_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(
        ForeignKey("model_revisions.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(1024))
    digest: Mapped[str] = mapped_column(String(100), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)

    revision: Mapped[ModelRevision] = relationship(back_populates="files")


class HostModel(db.Model):
    """A revision in one host's model cache (or a failed attempt to put it there)."""

    __tablename__ = "host_models"
    __table_args__ = (UniqueConstraint("host_id", "revision_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    revision_id: Mapped[int] = mapped_column(
        ForeignKey("model_revisions.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default=PRESENT)
    path: Mapped[str | None] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    pulled_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    revision: Mapped[ModelRevision] = relationship()
    host: Mapped[Host] = relationship()
