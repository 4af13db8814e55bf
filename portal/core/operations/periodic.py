"""Periodic jobs of the operations backbone."""

from __future__ import annotations

from portal.core.operations.recovery import recover_operations
from portal.core.operations.retention import prune_operations
from portal.core.ticker import periodic_job


@periodic_job("recover_operations", lambda app: app.config["SPECTR_RECOVERY_INTERVAL_SECONDS"])
def run_recovery() -> None:
    """Re-enqueue lost operations and take over those of dead workers."""
    recover_operations()


@periodic_job("prune_operations", lambda app: 3600.0)
def run_retention() -> None:
    """Remove finished operations past the retention, in batches (one worker, hourly)."""
    prune_operations()
