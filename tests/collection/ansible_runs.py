"""Run ansible-playbook against test hosts and read per-task results (JSON callback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SITE_COLLECTIONS = next(
    (
        Path(entry)
        for entry in sys.path
        if (Path(entry) / "ansible_collections" / "community").is_dir()
    ),
    REPO_ROOT,
)


class PlaybookFailed(AssertionError):
    """ansible-playbook exited non-zero."""


@dataclass
class PlaybookRun:
    """What one ansible-playbook run reported, by task name."""

    returncode: int
    report: dict[str, Any]
    stderr: str

    def task(self, name: str, host: str = "testhost") -> dict[str, Any]:
        """Return the result of the last task with this name on a host (role prefix ignored)."""
        found = None
        for play in self.report.get("plays", []):
            for task in play.get("tasks", []):
                task_name = task["task"]["name"]
                named = task_name == name or task_name.endswith(" : " + name)
                if named and host in task["hosts"]:
                    found = task["hosts"][host]
        if found is None:
            raise KeyError(f"no task {name!r} ran on {host}")
        return found

    def failed_tasks(self, host: str = "testhost") -> list[tuple[str, dict[str, Any]]]:
        """Return (task name, result) of every failed task on a host."""
        return [
            (task["task"]["name"], task["hosts"][host])
            for play in self.report.get("plays", [])
            for task in play.get("tasks", [])
            if task["hosts"].get(host, {}).get("failed")
        ]

    def failure_text(self, host: str = "testhost") -> str:
        """Return the messages of every failed task on a host, with its failed loop items'."""
        messages = []
        for _, result in self.failed_tasks(host):
            messages.append(str(result.get("msg", "")))
            items = result.get("results", [])
            messages += [str(item.get("msg", "")) for item in items if item.get("failed")]
        return "\n".join(messages)

    @property
    def stats(self) -> dict[str, Any]:
        """Return the recap counts per host."""
        return self.report.get("stats", {})

    def changed_count(self, host: str = "testhost") -> int:
        """Return the number of changed tasks on a host."""
        return int(self.stats[host]["changed"])


@dataclass
class AnsibleEnvironment:
    """Environment variables that point Ansible at this checkout and a private home."""

    home: Path
    extra: dict[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """Return the environment for ansible-playbook."""
        return {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "ANSIBLE_HOME": str(self.home),
            "ANSIBLE_LOCAL_TEMP": str(self.home / "tmp"),
            "ANSIBLE_COLLECTIONS_PATH": f"{REPO_ROOT}:{SITE_COLLECTIONS}",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            **self.extra,
        }

    def write_inventory(self, hosts: dict[str, dict[str, Any]], name: str = "inventory") -> Path:
        """Write a YAML inventory of named hosts with their variables."""
        path = self.home / f"{name}.yml"
        path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        return path

    def run_playbook(
        self,
        playbook: str | Path | list[dict[str, Any]],
        inventory: Path,
        extra_vars: dict[str, Any] | None = None,
        *,
        check: bool = False,
        diff: bool = False,
        expect_failure: bool = False,
        timeout: float = 900,
    ) -> PlaybookRun:
        """Run a playbook (a path, an FQCN, or plays as data) and return its JSON report."""
        if isinstance(playbook, list):
            path = self.home / "playbook.yml"
            path.write_text(yaml.safe_dump(playbook, sort_keys=False))
            playbook = path
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
        if extra_vars:
            vars_file = self.home / "extra-vars.json"
            vars_file.write_text(json.dumps(extra_vars))
            argv += ["-e", f"@{vars_file}"]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.variables(), timeout=timeout, check=False
        )
        try:
            report = json.loads(result.stdout[result.stdout.index("{") :])
        except ValueError:
            report = {}
        run = PlaybookRun(result.returncode, report, result.stderr)
        if (result.returncode != 0) != expect_failure:
            raise PlaybookFailed(
                f"ansible-playbook exited {result.returncode}\n{_failures(report)}\n"
                f"{result.stderr[-3000:]}\n{result.stdout[-3000:] if not report else ''}"
            )
        return run


def _failures(report: dict[str, Any]) -> str:
    lines = []
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for host, outcome in task["hosts"].items():
                if outcome.get("failed") or outcome.get("unreachable"):
                    message = outcome.get("msg") or outcome.get("stderr") or outcome
                    lines.append(f"{host}: {task['task']['name']}: {message}")
    return "\n".join(lines)
