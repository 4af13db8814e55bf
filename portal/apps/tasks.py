"""Operation kinds of the apps context; the work itself is in lifecycle."""

from __future__ import annotations

from typing import Any

from portal.apps import lifecycle
from portal.core.operations.kinds import OperationContext, operation_kind


@operation_kind("app.deploy")
def deploy_app(ctx: OperationContext) -> dict[str, Any]:
    """Deploy one revision of an application through spectr.core.deploy_app."""
    return lifecycle.deploy_revision(ctx)


@operation_kind("app.remove")
def remove_app(ctx: OperationContext) -> dict[str, Any]:
    """Remove an application from its host through spectr.core.remove_app."""
    return lifecycle.remove_application(ctx)


@operation_kind("app.container_action")
def container_action(ctx: OperationContext) -> dict[str, Any]:
    """Start, stop or restart an application's containers through the host's engine."""
    return lifecycle.container_action(ctx)


@operation_kind("app.pull")
def pull_app_images(ctx: OperationContext) -> dict[str, Any]:
    """Pull an application's images onto its host through the host's engine."""
    return lifecycle.pull_images(ctx)
