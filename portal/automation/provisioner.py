"""The Provisioner contract and its real implementation on ansible-runner.

Each run gets a private data dir (0700) that holds the inventory, keys and known_hosts and is
deleted afterwards. Events stream live through `event_handler`: each becomes a readable log
line (what an operator would see in ansible-playbook's output), and facts are taken from the
`runner_on_ok` events (ansible-core 2.19's fact cache format is not readable by
ansible-runner).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from portal.automation.inventory import InventoryHost, build_inventory
from portal.core.logging import current_request_id

LogLine = Callable[[str, str], None]
REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION = REPO_ROOT / "ansible_collections" / "spectr" / "core"


@dataclass
class HostOutcome:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    failure_message: str | None = None
    unreachable_message: str | None = None
    failed_task: str | None = None


@dataclass
class PlaybookEvent:
    kind: str  # play, task, ok, changed, failed, unreachable, skipped, recap
    host: str | None
    task: str | None
    message: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlaybookResult:
    status: str  # successful, failed, canceled, timeout
    rc: int
    hosts: dict[str, HostOutcome]
    facts: dict[str, dict[str, Any]]
    events_count: int

    @property
    def succeeded(self) -> bool:
        return self.status == "successful"


class Provisioner(Protocol):
    """Run a playbook against an inventory and report events."""

    def run(
        self,
        playbook: str,
        hosts: list[InventoryHost],
        extravars: dict[str, Any] | None = None,
        log: LogLine | None = None,
        on_event: Callable[[PlaybookEvent], None] | None = None,
        cancel_event: threading.Event | None = None,
        forks: int = 10,
        timeout_s: int | None = None,
    ) -> PlaybookResult: ...


def run_playbook(playbook: str, hosts: list[InventoryHost], **options: Any) -> PlaybookResult:
    """Run `playbook` with the configured provisioner (SPECTR_PROVISIONER, ansible-runner)."""
    return provisioner().run(playbook, hosts, **options)


def provisioner() -> Provisioner:
    """The configured Provisioner: built in, or from the spectr.provisioners entry points."""
    from flask import current_app, has_app_context

    from portal.core import plugins

    name = "ansible-runner"
    if has_app_context():
        name = current_app.config.get("SPECTR_PROVISIONER") or name
    factory = plugins.load("provisioner", name, {"ansible-runner": AnsibleRunnerProvisioner})
    return factory()  # type: ignore[no-any-return]


def resolve_playbook(playbook: str) -> str:
    """Map `spectr.core.NAME` to the collection's playbook file; pass paths through."""
    prefix = "spectr.core."
    if playbook.startswith(prefix):
        path = COLLECTION / "playbooks" / f"{playbook[len(prefix) :]}.yml"
        if not path.is_file():
            raise ValueError(f"The collection has no playbook '{playbook}'.")
        return str(path)
    return str(Path(playbook).resolve())


def collections_path() -> str:
    """Spectr's own collection first, then community.docker and friends from the venv."""
    import ansible_collections

    bundled = Path(next(iter(ansible_collections.__path__))).parent
    return f"{REPO_ROOT}:{bundled}"


class AnsibleRunnerProvisioner:
    def run(
        self,
        playbook: str,
        hosts: list[InventoryHost],
        extravars: dict[str, Any] | None = None,
        log: LogLine | None = None,
        on_event: Callable[[PlaybookEvent], None] | None = None,
        cancel_event: threading.Event | None = None,
        forks: int = 10,
        timeout_s: int | None = None,
    ) -> PlaybookResult:
        import ansible_runner

        data_dir = Path(tempfile.mkdtemp(prefix="spectr-run-"))
        collector = EventCollector(log, on_event)
        request_id = current_request_id()
        if log:
            # The run's first line: grep this id in the portal's, the agents' and the proxy's logs.
            log(f"Running {Path(playbook).name} (request_id={request_id or '-'}).", "info")
        try:
            runner = ansible_runner.run(
                private_data_dir=str(data_dir),
                playbook=resolve_playbook(playbook),
                inventory=build_inventory(hosts, data_dir),
                extravars=extravars or {},
                envvars=_environment(data_dir, request_id),
                event_handler=collector.handle,
                cancel_callback=(lambda: cancel_event.is_set()) if cancel_event else None,
                forks=forks,
                timeout=timeout_s,
                quiet=True,
                suppress_env_files=True,
            )
            return collector.result(runner.status, runner.rc or 0)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def _environment(data_dir: Path, request_id: str | None = None) -> dict[str, str]:
    # ansible-runner finds ansible-playbook on PATH; put this interpreter's bin folder first.
    venv_bin = str(Path(sys.executable).parent)
    return {
        # Playbooks and callbacks may read it: lookup('env', 'SPECTR_REQUEST_ID').
        "SPECTR_REQUEST_ID": request_id or "",
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "ANSIBLE_HOME": str(data_dir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(data_dir / "ansible-tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # One SSH round trip per task instead of several: bootstraps ran a third faster.
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": tempfile.mkdtemp(prefix="scp-", dir="/tmp"),
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_NOCOLOR": "True",
    }


class EventCollector:
    """Turn ansible-runner events into log lines, per-host outcomes and facts."""

    def __init__(self, log: LogLine | None, on_event: Callable[[PlaybookEvent], None] | None):
        self._log = log
        self._on_event = on_event
        self.hosts: dict[str, HostOutcome] = {}
        self.facts: dict[str, dict[str, Any]] = {}
        self.count = 0

    def handle(self, event: dict[str, Any]) -> bool:
        self.count += 1
        parsed = self._parse(event.get("event", ""), event.get("event_data") or {})
        if parsed is not None:
            if self._log:
                level = "error" if parsed.kind in ("failed", "unreachable") else "info"
                self._log(parsed.message, level)
            if self._on_event:
                self._on_event(parsed)
        return False  # nothing needs the event files on disk

    def _parse(self, kind: str, data: dict[str, Any]) -> PlaybookEvent | None:
        host, task = data.get("host"), data.get("task")
        result = data.get("res") or {}
        if kind == "playbook_on_play_start":
            return PlaybookEvent("play", None, None, f"PLAY [{data.get('play', '')}]")
        if kind == "playbook_on_task_start":
            return PlaybookEvent("task", None, task, f"TASK [{task}]")
        if kind == "playbook_on_stats":
            return PlaybookEvent("recap", None, None, self._recap())
        if host is None or not kind.startswith("runner_on_"):
            return None
        return self._host_event(kind, host, task, result, data)

    def _host_event(
        self, kind: str, host: str, task: str | None, result: dict, data: dict
    ) -> PlaybookEvent | None:
        outcome = self.hosts.setdefault(host, HostOutcome())
        if kind == "runner_on_ok":
            self.facts.setdefault(host, {}).update(result.get("ansible_facts") or {})
            changed = bool(result.get("changed"))
            outcome.ok += 1
            outcome.changed += int(changed)
            word = "changed" if changed else "ok"
            return PlaybookEvent(word, host, task, f"{word}: [{host}]", result)
        if kind == "runner_on_failed":
            message = failure_text(result)
            if data.get("ignore_errors"):
                return PlaybookEvent(
                    "ok", host, task, f"failed (ignored): [{host}]: {message}", result
                )
            outcome.failed += 1
            outcome.failure_message, outcome.failed_task = message, task
            return PlaybookEvent("failed", host, task, f"failed: [{host}]: {message}", result)
        if kind == "runner_on_unreachable":
            message = failure_text(result)
            outcome.unreachable += 1
            outcome.unreachable_message = message
            return PlaybookEvent(
                "unreachable", host, task, f"unreachable: [{host}]: {message}", result
            )
        if kind == "runner_on_skipped":
            outcome.skipped += 1
            return PlaybookEvent("skipped", host, task, f"skipping: [{host}]", result)
        return None

    def _recap(self) -> str:
        parts = [
            f"{host}: ok={o.ok} changed={o.changed} failed={o.failed} "
            f"unreachable={o.unreachable} skipped={o.skipped}"
            for host, o in sorted(self.hosts.items())
        ]
        return "RECAP " + ("; ".join(parts) if parts else "no hosts")

    def result(self, status: str, rc: int) -> PlaybookResult:
        return PlaybookResult(status, rc, self.hosts, self.facts, self.count)


def failure_text(result: dict[str, Any]) -> str:
    """The most telling part of a failed result: msg, then stderr, then stdout."""
    pieces = [str(result.get("msg") or "").strip()]
    for stream in ("stderr", "module_stderr", "stdout"):
        text = str(result.get(stream) or "").strip()
        if text and text not in pieces[0]:
            pieces.append(text[-800:])
            break
    return " — ".join(piece for piece in pieces if piece) or "failed without a message"
