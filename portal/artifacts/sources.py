"""Internal mirrors models are imported from (Hugging Face-compatible endpoints, S3-compatible
services): register, list, delete; and the remote reader an import's source asks for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.artifacts.models import HUGGINGFACE, ModelSource
from portal.artifacts.remote import HuggingFaceMirror, RegistryArtifact, S3Prefix
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, ValidationFailed
from portal.extensions import db


def list_sources() -> list[ModelSource]:
    return list(db.session.scalars(select(ModelSource).order_by(ModelSource.name)))


def get_source(source_id: int) -> ModelSource:
    source = db.session.get(ModelSource, source_id)
    if source is None:
        raise NotFound(f"No model source {source_id}.")
    return source


def create_source(values: dict[str, Any]) -> ModelSource:
    """Register a mirror; its token or keys are encrypted at rest (EncryptedText)."""
    _check_ca(values.get("ca_pem"))
    source = ModelSource(**values)
    db.session.add(source)
    record_audit("model_source.create", f"model_source:{values['name']}")
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"A model source named '{values['name']}' already exists.") from None
    return source


def delete_source(source: ModelSource) -> None:
    db.session.delete(source)
    record_audit("model_source.delete", f"model_source:{source.name}")
    db.session.commit()


def _check_ca(ca_pem: str | None) -> None:
    if not ca_pem:
        return
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(ca_pem.encode())
    except ValueError:
        message = "ca_pem is not a PEM certificate."
        raise ValidationFailed(message, {"ca_pem": [message]}) from None


@contextmanager
def open_remote(source: dict[str, Any]) -> Iterator[Any]:
    """The reader of an import's remote source, closed afterwards."""
    remote = _remote(source)
    try:
        yield remote
    finally:
        close = getattr(remote, "close", None)
        if close:
            close()


def _remote(source: dict[str, Any]) -> Any:
    if source["kind"] == "registry":
        from portal.registry import service as registry_service

        registry = registry_service.get_registry(int(source["registry_id"]))
        client = registry_service.client_for(registry, timeout=120)
        return RegistryArtifact(client, source["repository"], source["reference"])
    mirror = db.session.get(ModelSource, int(source["source_id"]))
    if mirror is None:
        raise NotFound(f"Model source {source['source_id']} no longer exists.")
    if mirror.kind == HUGGINGFACE:
        return HuggingFaceMirror(mirror.url, source["repository"], source.get("revision") or "main",
                                 mirror.token, mirror.ca_pem)  # fmt: skip
    return S3Prefix(mirror.url, source["bucket"], source.get("prefix") or "", mirror.access_key,
                    mirror.secret_key, mirror.region, mirror.ca_pem)  # fmt: skip
