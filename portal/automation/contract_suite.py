"""The Provisioner contract, as a test suite anyone can run against their own provisioner.

Spectr runs it on its ansible-runner provisioner (tests/automation/test_provisioner_contract.py).
It needs pytest, the provisioner and one host the provisioner reaches over SSH (where
/tmp is writable); the playbooks it runs use ansible.builtin modules only:

    # test_my_provisioner.py
    import pytest
    from portal.automation import InventoryHost
    from portal.automation.contract_suite import ProvisionerContract

    class TestMyProvisioner(ProvisionerContract):
        @pytest.fixture
        def provisioner(self):
            return MyProvisioner()

        @pytest.fixture
        def inventory_host(self):
            return InventoryHost("web1", "10.0.0.5", user="root", private_key=KEY,
                                 known_host_key=HOST_KEY)

    $ pytest test_my_provisioner.py

What it checks: a run streams its log (play, task, per-host and recap lines) and its events,
reports per-host outcomes and facts, is idempotent when the playbook is; a failed task names
itself and carries the command's error; an unreachable host is reported per host, not raised.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest

from portal.automation.inventory import InventoryHost
from portal.automation.provisioner import PlaybookEvent, Provisioner

PLAYBOOK = """\
- name: Contract run
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the minimal facts
      ansible.builtin.setup:
        gather_subset: [min]

    - name: Write the marker
      ansible.builtin.copy:
        dest: "/tmp/{{ marker_name }}"
        content: "{{ marker }}\\n"
        mode: "0644"

    - name: Fail when asked to
      ansible.builtin.command: sh -c "echo 'disk full' >&2; exit 3"
      when: fail_on_purpose | default(false)
      changed_when: false
"""


class ProvisionerContract:
    """Subclass it as Test…, with `provisioner` and `inventory_host` fixtures (see above)."""

    @pytest.fixture
    def playbook(self, tmp_path: Path) -> str:
        path = tmp_path / "contract.yml"
        path.write_text(PLAYBOOK)
        return str(path)

    @pytest.fixture
    def marker(self) -> dict[str, str]:
        token = secrets.token_hex(4)
        return {"marker_name": f"spectr-contract-{token}", "marker": token}

    def test_a_run_streams_its_log_and_reports_each_host(
        self,
        provisioner: Provisioner,
        inventory_host: InventoryHost,
        playbook: str,
        marker: dict[str, str],
    ) -> None:
        lines: list[tuple[str, str]] = []
        events: list[PlaybookEvent] = []
        result = provisioner.run(
            playbook, [inventory_host], extravars=marker,
            log=lambda line, level: lines.append((line, level)), on_event=events.append,
        )  # fmt: skip
        name = inventory_host.name
        assert result.succeeded and result.rc == 0, lines
        messages = [line for line, _ in lines]
        assert "PLAY [Contract run]" in messages
        assert "TASK [Write the marker]" in messages
        assert f"changed: [{name}]" in messages
        assert messages[-1].startswith(f"RECAP {name}: ok=")
        assert {"play", "task", "ok", "changed", "recap"} <= {event.kind for event in events}
        outcome = result.hosts[name]
        assert outcome.changed >= 1 and outcome.failed == outcome.unreachable == 0
        assert result.facts[name]  # from the setup task
        again = provisioner.run(playbook, [inventory_host], extravars=marker)
        assert again.succeeded and again.hosts[name].changed == 0

    def test_a_failed_task_names_itself_and_its_error(
        self,
        provisioner: Provisioner,
        inventory_host: InventoryHost,
        playbook: str,
        marker: dict[str, str],
    ) -> None:
        lines: list[tuple[str, str]] = []
        result = provisioner.run(
            playbook, [inventory_host], extravars={**marker, "fail_on_purpose": True},
            log=lambda line, level: lines.append((line, level)),
        )  # fmt: skip
        assert result.status == "failed" and not result.succeeded
        outcome = result.hosts[inventory_host.name]
        assert outcome.failed == 1 and outcome.failed_task == "Fail when asked to"
        assert outcome.failure_message and "disk full" in outcome.failure_message
        assert any(level == "error" and "disk full" in line for line, level in lines)

    def test_an_unreachable_host_is_reported_per_host(
        self, provisioner: Provisioner, playbook: str, marker: dict[str, str]
    ) -> None:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        ghost = InventoryHost("ghost", "127.0.0.1", port=port, private_key="not a key")
        result = provisioner.run(playbook, [ghost], extravars=marker)
        assert result.status == "failed"
        assert result.hosts["ghost"].unreachable == 1
        assert result.hosts["ghost"].unreachable_message
