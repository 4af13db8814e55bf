"""Catalog rows: Docker images, LLM models and the serving runtimes that run them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.timeutil import utcnow
from portal.extensions import db


class CatalogImage(db.Model):
    """A Docker image Spectr knows about (added by hand or synced from a registry)."""

    __tablename__ = "catalog_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(512), unique=True)
    registry_host: Mapped[str] = mapped_column(String(255))
    repository: Mapped[str] = mapped_column(String(255), index=True)
    tag: Mapped[str | None] = mapped_column(String(128))
    digest: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LlmModel(db.Model):
    """An LLM: what it is, where its weights come from, and its shape for the VRAM estimate."""

    __tablename__ = "catalog_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    parameters_billions: Mapped[float] = mapped_column()
    quantization: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(32))
    source_kind: Mapped[str] = mapped_column(String(16))  # huggingface | path | image | registry
    source: Mapped[str] = mapped_column(String(512))
    context_length: Mapped[int] = mapped_column(Integer)
    license: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Transformer shape for the KV cache estimate (from the model's config.json).
    num_layers: Mapped[int | None] = mapped_column(Integer)
    num_kv_heads: Mapped[int | None] = mapped_column(Integer)
    head_dim: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Runtime(db.Model):
    """A serving runtime template: how to run a model in a container."""

    __tablename__ = "catalog_runtimes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # vllm | ollama | tgi | llamacpp | custom
    image: Mapped[str] = mapped_column(String(512))
    # Placeholders: {model_source} {model_name} {context_length} {port} {gpu_count}
    command_template: Mapped[list[str]] = mapped_column(JSON, default=list)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    port: Mapped[int] = mapped_column(Integer)
    health_path: Mapped[str] = mapped_column(String(128), default="/health")
    openai_base_path: Mapped[str] = mapped_column(String(64), default="/v1")
    requires_gpu: Mapped[bool] = mapped_column(Boolean, default=True)
    multi_gpu: Mapped[bool] = mapped_column(Boolean, default=False)
    overhead_mib: Mapped[int] = mapped_column(Integer, default=1024)
    supported_formats: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
