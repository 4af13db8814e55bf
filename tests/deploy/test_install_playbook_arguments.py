"""deploy/install-spectr.yml refuses missing settings before it changes anything, naming them.

One ansible-playbook run against the control node itself (connection local); each inventory host
is one case. The playbook's first task must fail on every case, so nothing else runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.collection.ansible_runs import REPO_ROOT, AnsibleEnvironment, PlaybookRun

pytestmark = [pytest.mark.slow]  # runs ansible-playbook

PLAYBOOK = REPO_ROOT / "deploy" / "install-spectr.yml"
COMPLETE = {"spectr_wheelhouse": "/nonexistent/wheels", "spectr_secret_key": "s" * 32,
            "spectr_encryption_keys": "a-fernet-key"}  # fmt: skip

# case: (variables, the words the failure must contain)
CASES: dict[str, tuple[dict[str, str], list[str]]] = {
    "nothing-given": ({}, ["spectr_wheelhouse", "spectr_secret_key", "spectr_encryption_keys"]),
    "empty-secret-key": ({**COMPLETE, "spectr_secret_key": ""}, ["missing or empty: spectr_secret_key."]),
    "no-encryption-keys": (
        {k: v for k, v in COMPLETE.items() if k != "spectr_encryption_keys"},
        ["missing or empty: spectr_encryption_keys."],
    ),
    "short-admin-password": (
        {**COMPLETE, "spectr_admin_password": "short"}, ["spectr_admin_password", "10 characters"]
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PlaybookRun:
    env = AnsibleEnvironment(Path(tmp_path_factory.mktemp("ansible-home")))
    hosts = {case: {"ansible_connection": "local", **variables}
             for case, (variables, _) in CASES.items()}  # fmt: skip
    inventory = env.write_inventory(hosts, "install-arguments")
    return env.run_playbook(PLAYBOOK, inventory, {"spectr_hosts": "all"}, expect_failure=True)


@pytest.mark.parametrize("case", CASES)
def test_a_missing_setting_fails_first_and_is_named(run: PlaybookRun, case: str) -> None:
    _, words = CASES[case]

    [(task, _)] = run.failed_tasks(host=case)

    message = run.failure_text(case)
    assert task.startswith("Check the"), task
    assert all(word in message for word in words), message
    assert run.changed_count(case) == 0
    assert run.stats[case]["ok"] <= 1  # at most the check before the one that failed
