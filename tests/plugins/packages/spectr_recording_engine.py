"""A package apart from Spectr that offers a ContainerEngine and a Provisioner by entry point.

tests/plugins/test_entry_points.py installs it as a dist-info on sys.path, with

    [spectr.engines]
    recording = spectr_recording_engine:engine_for_host
    [spectr.provisioners]
    recording = spectr_recording_engine:RecordingProvisioner

Nothing in portal/ names it. The engine is Spectr's local Docker engine that records each call
(a second real engine cannot run here: podman cannot start containers on this machine); the
provisioner runs the configured one (ansible-runner) and records the playbooks.
"""

from __future__ import annotations

from typing import Any

from portal.automation.provisioner import AnsibleRunnerProvisioner, PlaybookResult
from portal.engines import LocalDockerEngine

CALLS: list[tuple[str, str]] = []  # (host name or "provisioner", what was called)


class RecordingEngine(LocalDockerEngine):
    def __init__(self, host_name: str) -> None:
        super().__init__()
        self.host_name = host_name

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if callable(attribute) and not name.startswith("_") and name != "close":
            CALLS.append((super().__getattribute__("host_name"), name))
        return attribute


def engine_for_host(host: Any) -> RecordingEngine:
    """The spectr.engines factory: called with the portal's Host row."""
    return RecordingEngine(host.name)


class RecordingProvisioner(AnsibleRunnerProvisioner):
    def run(self, playbook: str, hosts: list[Any], **options: Any) -> PlaybookResult:
        CALLS.append(("provisioner", playbook))
        return super().run(playbook, hosts, **options)
