"""ansible-runner against a real SSH test host: live log lines, outcomes, facts, SSH errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from portal.automation import InventoryHost, run_playbook
from portal.automation.inventory import build_inventory
from portal.automation.provisioner import resolve_playbook
from tests.support.fixtures import test_host  # noqa: F401 - fixture
from tests.support.testhosts import free_local_port

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "facts.yml")


def _known_host_key(host) -> str:
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(host.port), "-t", "ed25519", host.address],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return scanned.stdout.strip().splitlines()[0]


def _inventory_host(host, **overrides) -> InventoryHost:
    values = {
        "name": "web1",
        "address": host.address,
        "port": host.port,
        "user": "root",
        "private_key": host.private_key_path.read_text(),
        "known_host_key": _known_host_key(host),
    }
    return InventoryHost(**{**values, **overrides})


def test_inventory_keeps_secrets_in_private_files(tmp_path):
    inventory = build_inventory(
        [
            InventoryHost(
                "a",
                "127.0.0.1",
                private_key="KEY",
                known_host_key="[127.0.0.1]:22 ssh-ed25519 AAAA",
            )
        ],
        tmp_path,
    )
    variables = inventory["all"]["hosts"]["a"]
    key_file = Path(variables["ansible_ssh_private_key_file"])
    assert key_file.read_text() == "KEY\n"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert "StrictHostKeyChecking=yes" in variables["ansible_ssh_common_args"]
    assert "KEY" not in str(inventory)


def test_unknown_playbook_of_the_collection_is_refused():
    with pytest.raises(ValueError, match=r"no playbook 'spectr\.core\.nope'"):
        resolve_playbook("spectr.core.nope")
    assert resolve_playbook("spectr.core.bootstrap").endswith("playbooks/bootstrap.yml")


@pytest.mark.slow
@pytest.mark.docker
def test_playbook_run_streams_log_and_returns_facts(test_host):  # noqa: F811
    lines: list[tuple[str, str]] = []
    result = run_playbook(
        PLAYBOOK, [_inventory_host(test_host)], extravars={"marker": "first"},
        log=lambda line, level: lines.append((line, level)),
    )  # fmt: skip
    assert result.succeeded, lines
    messages = [line for line, _ in lines]
    assert messages[0] == "Running facts.yml (request_id=-)."
    assert messages[1] == "PLAY [Read facts and touch a file]"
    assert "TASK [Read the host's facts with spectr.core.host_facts]" in messages
    assert "changed: [web1]" in messages
    assert messages[-1].startswith("RECAP web1: ok=")
    facts = result.facts["web1"]
    assert any("debian" in str(value).lower() for value in facts.values())
    assert result.hosts["web1"].changed >= 1
    assert test_host.ssh("cat", "/tmp/spectr-automation-marker").strip() == "first"

    again = run_playbook(PLAYBOOK, [_inventory_host(test_host)], extravars={"marker": "first"})
    assert again.succeeded and again.hosts["web1"].changed == 0


@pytest.mark.slow
@pytest.mark.docker
def test_task_failure_carries_the_command_error(test_host):  # noqa: F811
    lines: list[tuple[str, str]] = []
    result = run_playbook(
        PLAYBOOK, [_inventory_host(test_host)], extravars={"fail_on_purpose": True},
        log=lambda line, level: lines.append((line, level)),
    )  # fmt: skip
    assert result.status == "failed"
    outcome = result.hosts["web1"]
    assert outcome.failed == 1 and outcome.failed_task == "Fail when asked to"
    assert "disk full" in outcome.failure_message
    assert ("failed: [web1]: " + outcome.failure_message, "error") in lines


@pytest.mark.slow
@pytest.mark.docker
def test_changed_host_key_is_refused(test_host):  # noqa: F811
    real = _known_host_key(test_host)
    forged = (
        real.rsplit(" ", 1)[0]
        + " AAAAC3NzaC1lZDI1NTE5AAAAIEVbXtEnB5jZq0a5xVnU5dQnq0v1VHqpXc7H4t5K6b7G"
    )
    result = run_playbook(PLAYBOOK, [_inventory_host(test_host, known_host_key=forged)])
    outcome = result.hosts["web1"]
    assert outcome.unreachable == 1
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in outcome.unreachable_message or (
        "Host key verification failed" in outcome.unreachable_message
    )


@pytest.mark.slow
def test_unreachable_address_is_reported_per_host():
    port = free_local_port()  # nothing listens there
    host = InventoryHost("ghost", "127.0.0.1", port=port, private_key="not a key")
    result = run_playbook(PLAYBOOK, [host])
    assert result.status == "failed"
    assert result.hosts["ghost"].unreachable == 1
    assert "Connection refused" in result.hosts["ghost"].unreachable_message
