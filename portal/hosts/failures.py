"""Readable reasons for a host whose bootstrap failed, from what Ansible reported."""

from __future__ import annotations

import re
from dataclasses import dataclass

from portal.automation import HostOutcome

_AUTH = re.compile(
    r"Permission denied|Authentication failed|Invalid/incorrect password|incorrect password"
    r"|Missing sudo password|Incorrect sudo password|no authentication methods",
    re.IGNORECASE,
)
_HOST_KEY = re.compile(
    r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed", re.IGNORECASE
)
_PACKAGES = re.compile(r"\b(apt|dnf|yum|dpkg|package|packages)\b", re.IGNORECASE)
AGENT_HEALTH_TASK = "Wait for the agent's health endpoint"
AGENT_CERTIFICATE_TASK = "Wait for the agent to serve its certificate"


@dataclass(frozen=True)
class HostFailure:
    kind: str  # unreachable, authentication, host_key_changed, packages, agent, task
    message: str

    @property
    def transient(self) -> bool:
        return self.kind == "unreachable"


def classify_outcome(outcome: HostOutcome) -> HostFailure | None:
    """Name the reason a host failed in a playbook run, or None when it did not fail."""
    if outcome.unreachable:
        return classify_connection_failure(outcome.unreachable_message or "")
    if not outcome.failed:
        return None
    message = outcome.failure_message or "no message"
    task = outcome.failed_task or "unknown task"
    if _AUTH.search(message):
        return HostFailure("authentication", f"Authentication failed (become): {message}")
    if task.endswith((AGENT_HEALTH_TASK, AGENT_CERTIFICATE_TASK)):
        return HostFailure("agent", f"Agent did not come up on the host: {message}")
    if "install" in task.lower() and _PACKAGES.search(task + " " + message):
        return HostFailure("packages", f"Package installation failed in '{task}': {message}")
    return HostFailure("task", f"Task '{task}' failed: {message}")


def classify_connection_failure(message: str) -> HostFailure:
    """Tell a refused login and a changed host key apart from a host that does not answer."""
    if _HOST_KEY.search(message):
        return HostFailure(
            "host_key_changed",
            "Host key changed: SSH refused to connect because the host's key differs from the "
            f"one recorded at first contact. {message}",
        )
    if "Load key" in message:
        return HostFailure(
            "authentication",
            f"Authentication failed: the stored SSH private key cannot be loaded: {message}",
        )
    if _AUTH.search(message):
        return HostFailure("authentication", f"Authentication failed: {message}")
    return HostFailure("unreachable", f"Host unreachable: {message}")
