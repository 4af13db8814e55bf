"""Registries: register, check, browse and delete tags; find Spectr's own registry.

Passwords are stored encrypted and never leave this module except inside a RegistryClient.
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, SpectrError, ValidationFailed
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.registry.client import Credentials, Page, RegistryClient
from portal.registry.manifests import ManifestSummary, summarise
from portal.registry.models import EXTERNAL, SPECTR, Registry

EDITABLE_FIELDS = ("name", "url", "username", "password", "ca_pem")


def get_registry(registry_id: int) -> Registry:
    registry = db.session.get(Registry, registry_id)
    if registry is None:
        raise NotFound(f"No registry with id {registry_id}.")
    return registry


def list_registries() -> list[Registry]:
    return list(db.session.scalars(select(Registry).order_by(Registry.kind.desc(), Registry.name)))


def spectr_registry() -> Registry | None:
    """Spectr's own registry, the one hosts pull from, if one was deployed."""
    return db.session.scalar(select(Registry).where(Registry.kind == SPECTR).order_by(Registry.id))


def require_spectr_registry() -> Registry:
    registry = spectr_registry()
    if registry is None:
        raise Conflict("Spectr's registry is not deployed yet: deploy it first.")
    return registry


def create_registry(values: dict[str, Any]) -> Registry:
    """Register an external registry (its password is encrypted at rest)."""
    _check_ca(values.get("ca_pem"))
    registry = Registry(kind=EXTERNAL, **values)
    db.session.add(registry)
    _commit_unique(registry, "registry.create")
    return registry


def update_registry(registry: Registry, changes: dict[str, Any]) -> Registry:
    _check_ca(changes.get("ca_pem"))
    for name in EDITABLE_FIELDS:
        if name in changes:
            setattr(registry, name, changes[name])
    _commit_unique(registry, "registry.update", {"fields": sorted(changes)})
    return registry


def delete_registry(registry: Registry) -> None:
    record_audit("registry.delete", f"registry:{registry.id}", details={"name": registry.name})
    db.session.delete(registry)
    db.session.commit()


def _commit_unique(registry: Registry, action: str, details: dict | None = None) -> None:
    try:
        db.session.flush()
        record_audit(action, f"registry:{registry.id}", details=details or {})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            f"A registry named '{registry.name}' already exists.", {"name": ["already used"]}
        ) from None


def _check_ca(ca_pem: str | None) -> None:
    if not ca_pem:
        return
    try:
        x509.load_pem_x509_certificates(ca_pem.encode())
        ssl.create_default_context(cadata=ca_pem)
    except (ValueError, ssl.SSLError) as exc:
        raise ValidationFailed(
            "The CA is not a PEM certificate.", {"ca_pem": ["not a PEM certificate"]}
        ) from exc


def client_for(registry: Registry, timeout: float = 30.0) -> RegistryClient:
    """A client carrying the registry's decrypted credentials and CA."""
    credentials = Credentials(registry.url, registry.username, registry.password, registry.ca_pem)
    return RegistryClient(credentials, timeout=timeout)


def check_connection(registry: Registry) -> dict[str, Any]:
    """Try the registry with its credentials; record and return whether it worked and why."""
    try:
        with client_for(registry, timeout=10.0) as client:
            version = client.ping()
        ok, message = True, f"Connected; the registry speaks {version}."
    except SpectrError as exc:
        ok, message, version = False, exc.message, None
    registry.last_checked_at, registry.last_check_ok = utcnow(), ok
    registry.last_check_message = message
    record_audit("registry.check", f"registry:{registry.id}", "success" if ok else "failed")
    db.session.commit()
    return {"ok": ok, "message": message, "api_version": version, "checked_at": utcnow()}


def repositories(registry: Registry, n: int, last: str | None) -> Page:
    with client_for(registry) as client:
        return client.repositories(n, last)


def tags(registry: Registry, repository: str, n: int, last: str | None) -> Page:
    with client_for(registry) as client:
        return client.tags(repository, n, last)


def manifest(registry: Registry, repository: str, reference: str) -> ManifestSummary:
    with client_for(registry) as client:
        return summarise(client, repository, reference)


def delete_tag(registry: Registry, repository: str, tag: str) -> str:
    """Delete a tag by deleting its manifest; other tags of the same digest go with it."""
    with client_for(registry) as client:
        digest = client.manifest_digest(repository, tag)
        client.delete_manifest(repository, digest)
    record_audit(
        "registry.delete_tag",
        f"registry:{registry.id}",
        details={"repository": repository, "tag": tag, "digest": digest},
    )
    db.session.commit()
    return digest


def pull_settings() -> dict[str, Any] | None:
    """What a host needs to pull from Spectr's registry: address, CA, login; None if absent."""
    registry = spectr_registry()
    if registry is None:
        return None
    return {
        "address": registry.address,
        "url": registry.url,
        "ca_pem": registry.ca_pem,
        "username": registry.username,
        "password": registry.password,
    }


def bootstrap_extravars() -> dict[str, Any]:
    """Extra variables for spectr.core.bootstrap so the host's Docker trusts Spectr's registry."""
    settings = pull_settings()
    if settings is None or not settings["ca_pem"]:
        return {}
    return {
        "docker_engine_registry_cas": [
            {"registry": settings["address"], "ca_pem": settings["ca_pem"]}
        ]
    }


def app_registry_login(image: str) -> dict[str, str]:
    """The app role's `app_registry_login` when `image` lives in Spectr's registry, else {}."""
    settings = pull_settings()
    if settings is None or not image.startswith(settings["address"] + "/"):
        return {}
    return {
        "url": settings["address"],
        "username": settings["username"] or "",
        "password": settings["password"] or "",
    }
