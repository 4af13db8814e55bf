"""Fill the image catalog from a registry's tags (through the registry context's client)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.catalog.models import CatalogImage
from portal.catalog.references import parse_image_reference
from portal.core.audit import record_audit
from portal.extensions import db

MAX_TAGS = 200


def sync_repository(registry_id: int, repository: str, log: Any = None) -> dict[str, Any]:
    """Add (or refresh the digest and size of) an image per tag of `repository`."""
    from portal.registry import service as registries

    registry = registries.get_registry(registry_id)
    page = registries.tags(registry, repository, MAX_TAGS, None)
    added = updated = 0
    for tag in page.items:
        summary = registries.manifest(registry, repository, tag)
        reference = f"{registry.address}/{repository}:{tag}"
        parsed = parse_image_reference(reference, "reference")
        image = db.session.scalar(select(CatalogImage).filter_by(reference=reference))
        if image is None:
            image = CatalogImage(reference=reference, registry_host=parsed.registry,
                                 repository=parsed.repository, tag=tag, labels={},
                                 description=f"synced from registry '{registry.name}'")  # fmt: skip
            db.session.add(image)
            added += 1
        elif image.digest != summary.digest:
            updated += 1
        image.digest, image.size_bytes = summary.digest, summary.size
        # Commit before logging: the log is written on another connection, and SQLite lets
        # one writer at a time.
        db.session.commit()
        if log:
            log(f"{reference} {summary.digest} ({summary.size} bytes)")
    details = {
        "registry": registry.name,
        "repository": repository,
        "added": added,
        "updated": updated,
    }
    record_audit("catalog.sync", f"registry:{registry.id}", details=details)
    db.session.commit()
    return {**details, "tags": len(page.items), "more": page.next_last is not None}
