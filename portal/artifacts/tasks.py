"""Operation kinds of the model artifacts context; the work is in importing and distribution."""

from __future__ import annotations

from typing import Any

from portal.artifacts import distribution, importing
from portal.core.operations.kinds import OperationContext, operation_kind


@operation_kind("model.import")
def import_model(ctx: OperationContext) -> dict[str, Any]:
    """Store an uploaded model or a folder on the Spectr node in Spectr's registry."""
    return importing.run_import(ctx)


@operation_kind("model.distribute")
def distribute_model(ctx: OperationContext) -> dict[str, Any]:
    """Put a model revision into the model cache of one or more hosts."""
    return distribution.distribute(ctx)


@operation_kind("model.remove_from_host")
def remove_model_from_host(ctx: OperationContext) -> dict[str, Any]:
    """Delete a model revision from one host's model cache."""
    return distribution.remove_from_host(ctx)
