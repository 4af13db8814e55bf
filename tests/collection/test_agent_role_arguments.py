"""spectr.core.agent stops before touching a host when a credential is missing.

Runs in check mode against the control node itself (connection local): the role fails on its
argument spec or its mutual-TLS check, long before a task that would change anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.collection.ansible_runs import AnsibleEnvironment, PlaybookRun

pytestmark = [pytest.mark.slow]  # runs ansible-playbook


def run_role(ansible_env: AnsibleEnvironment, tmp_path: Path, **variables: Any) -> PlaybookRun:
    artifact = tmp_path / "spectr-agent.pyz"
    artifact.write_text("stand-in: the role fails before copying it")
    inventory = ansible_env.write_inventory(
        {"testhost": {"ansible_connection": "local"}}, "local-agent-args"
    )
    base = {"agent_artifact": str(artifact), "agent_tls_cert": "CERT", "agent_tls_key": "KEY",
            "agent_token": "token-for-argument-tests"}  # fmt: skip
    values = {key: value for key, value in {**base, **variables}.items() if value is not None}
    play = [{"name": "Agent", "hosts": "all", "gather_facts": False,
             "roles": [{"role": "spectr.core.agent"}]}]  # fmt: skip
    return ansible_env.run_playbook(play, inventory, values, check=True, expect_failure=True)


def test_mutual_tls_without_a_client_ca_fails_with_what_to_do(
    ansible_env: AnsibleEnvironment, tmp_path: Path
) -> None:
    run = run_role(ansible_env, tmp_path)

    [(task, result)] = run.failed_tasks()
    assert task.endswith("Require a client CA while mutual TLS is on")
    assert "agent_client_ca must hold the PEM" in result["msg"]
    assert "agent_require_client_cert to false" in result["msg"]


def test_a_missing_token_fails_argument_validation_with_its_name(
    ansible_env: AnsibleEnvironment, tmp_path: Path
) -> None:
    run = run_role(ansible_env, tmp_path, agent_token=None, agent_client_ca="CA")

    [(task, result)] = run.failed_tasks()
    assert "Validating arguments" in task
    assert "missing required arguments: agent_token" in result["msg"]
