"""Automation: run the spectr.core collection's playbooks against hosts (the Provisioner)."""

from portal.automation.inventory import InventoryHost
from portal.automation.provisioner import (
    HostOutcome,
    PlaybookEvent,
    PlaybookResult,
    Provisioner,
    run_playbook,
)

__all__ = [
    "HostOutcome",
    "InventoryHost",
    "PlaybookEvent",
    "PlaybookResult",
    "Provisioner",
    "run_playbook",
]
