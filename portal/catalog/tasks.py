"""Operation kinds of the catalog context: pull a catalog image onto a host."""

from __future__ import annotations

from typing import Any

from portal.core.operations.kinds import (
    OperationContext,
    PermanentError,
    TransientError,
    operation_kind,
)
from portal.engines import EngineError
from portal.engines import errors as engine_errors
from portal.extensions import db


@operation_kind("catalog.pull_image")
def pull_image(ctx: OperationContext) -> dict[str, Any]:
    """Pull a catalog image onto a host through its engine."""
    from portal.catalog.models import CatalogImage
    from portal.hosts.models import Host
    from portal.hosts.service import engine_for

    image = db.session.get(CatalogImage, ctx.params["image_id"])
    host = db.session.get(Host, ctx.params["host_id"])
    if image is None or host is None:
        raise PermanentError("The image or the host no longer exists.")
    try:
        with engine_for(host) as engine:
            info = engine.pull_image(
                image.reference, progress=lambda p: ctx.log(f"{p.status} {p.id or ''}".strip())
            )
    except engine_errors.Unavailable as exc:
        raise TransientError(exc.message) from None
    except EngineError as exc:
        raise PermanentError(exc.message) from None
    return {"image": image.reference, "host": host.name, "id": info.id}


@operation_kind("catalog.remove_image")
def remove_image(ctx: OperationContext) -> dict[str, Any]:
    """Remove a catalog image from a host through its engine (refused while a container uses it)."""
    from portal.catalog.models import CatalogImage
    from portal.hosts.models import Host
    from portal.hosts.service import engine_for

    image = db.session.get(CatalogImage, ctx.params["image_id"])
    host = db.session.get(Host, ctx.params["host_id"])
    if image is None or host is None:
        raise PermanentError("The image or the host no longer exists.")
    try:
        with engine_for(host) as engine:
            engine.remove_image(image.reference)
    except engine_errors.Unavailable as exc:
        raise TransientError(exc.message) from None
    except EngineError as exc:
        raise PermanentError(exc.message) from None
    ctx.log(f"removed {image.reference} from {host.name}")
    return {"image": image.reference, "host": host.name}


@operation_kind("catalog.sync_registry")
def sync_registry(ctx: OperationContext) -> dict[str, Any]:
    """Add a registry repository's tags to the image catalog."""
    from portal.catalog.registry_sync import sync_repository
    from portal.core.errors import SpectrError, UpstreamUnavailable

    try:
        return sync_repository(ctx.params["registry_id"], ctx.params["repository"], ctx.log)
    except UpstreamUnavailable as exc:
        raise TransientError(exc.message) from None
    except SpectrError as exc:
        raise PermanentError(exc.message) from None
