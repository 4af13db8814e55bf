"""Operation kinds of the registry context."""

from __future__ import annotations

from typing import Any

from portal.core.operations.kinds import OperationContext, operation_kind
from portal.registry import access, deploy, images_in


@operation_kind("deploy_registry")
def run_deploy_registry(ctx: OperationContext) -> dict[str, Any]:
    """Deploy Spectr's registry on the Spectr node or a host."""
    return deploy.deploy_registry(ctx)


@operation_kind("registry_gc")
def run_registry_gc(ctx: OperationContext) -> dict[str, Any]:
    """Garbage-collect Spectr's registry."""
    return deploy.garbage_collect(ctx)


@operation_kind("import_image_archive")
def run_import_image_archive(ctx: OperationContext) -> dict[str, Any]:
    """Load an uploaded `docker save` archive and push its images to Spectr's registry."""
    return images_in.import_archive(ctx)


@operation_kind("mirror_image")
def run_mirror_image(ctx: OperationContext) -> dict[str, Any]:
    """Copy an image into Spectr's registry from another registry or the node's engine."""
    return images_in.mirror_image(ctx)


@operation_kind("registry_access")
def run_registry_access(ctx: OperationContext) -> dict[str, Any]:
    """Make hosts trust and log in to Spectr's registry."""
    return access.grant_registry_access(ctx)
