"""Every role of spectr.core refuses a missing or empty required variable, naming it.

One ansible-playbook run, in check mode, against the control node itself (connection local):
each inventory host is one case, running one role with one required variable left out or
empty. Every case must fail in a check that changes nothing, with the variable in its message.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.collection.ansible_runs import AnsibleEnvironment, PlaybookRun

pytestmark = [pytest.mark.slow]  # runs ansible-playbook

MISSING = object()  # the case leaves the variable out

AGENT = {"agent_tls_cert": "CERT", "agent_tls_key": "KEY", "agent_token": "a-token",
         "agent_client_ca": "CA"}  # fmt: skip
REGISTRY = {"registry_tls_cert": "CERT", "registry_tls_key": "KEY",
            "registry_users": [{"name": "spectr", "password": "pw"}]}  # fmt: skip
MONITORING = {"monitoring_scrape_token": "token", "monitoring_ca_cert": "CA"}
SERVICE = {"service_name": "spectr-test", "service_command": ["/bin/sleep", "60"]}

# case: (role, base variables, variable under test, its value or MISSING)
CASES: dict[str, tuple[str, dict[str, Any], str, Any]] = {
    "app-missing-name": ("app", {"app_image": "busybox"}, "app_name", MISSING),
    "app-empty-name": ("app", {"app_image": "busybox"}, "app_name", ""),
    "app-remove-empty-name": ("app", {"app_state": "absent"}, "app_name", ""),
    "registry-missing-users": ("registry", REGISTRY, "registry_users", MISSING),
    "registry-empty-users": ("registry", REGISTRY, "registry_users", []),
    "registry-missing-cert": ("registry", REGISTRY, "registry_tls_cert", MISSING),
    "registry-empty-key": ("registry", REGISTRY, "registry_tls_key", ""),
    "monitoring-missing-token": ("monitoring", MONITORING, "monitoring_scrape_token", MISSING),
    "monitoring-empty-ca": ("monitoring", MONITORING, "monitoring_ca_cert", " "),
    "service-missing-name": ("service", SERVICE, "service_name", MISSING),
    "service-empty-command": ("service", SERVICE, "service_command", []),
    "agent-empty-token": ("agent", AGENT, "agent_token", ""),
    "agent-empty-key": ("agent", AGENT, "agent_tls_key", ""),
    "bootstrap-missing-token": ("bootstrap", AGENT, "agent_token", MISSING),
    "bootstrap-empty-token": ("bootstrap", AGENT, "agent_token", ""),
}

# Files on the control node: a relative path would be looked up inside the installed collection.
# case: (role, base variables, variable under test, its value, what the message says)
PATH_CASES: dict[str, tuple[str, dict[str, Any], str, str, str]] = {
    "agent-relative-artifact": ("agent", AGENT, "agent_artifact", "dist/agent.pyz", "is a relative path"),
    "agent-absent-artifact": ("agent", AGENT, "agent_artifact", "/nonexistent/agent.pyz", "does not exist"),
    "bootstrap-relative-artifact": ("bootstrap", AGENT, "agent_artifact", "dist/agent.pyz", "is a relative path"),
    "app-relative-archive": ("app", {"app_name": "web", "app_image": "busybox"}, "app_image_archive",
                             "images/web.tar", "is a relative path"),
    "registry-relative-archive": ("registry", {**REGISTRY, "registry_install_method": "container"},
                                  "registry_image_archive", "images/registry.tar", "is a relative path"),
    "proxy-relative-archive": ("proxy", {}, "proxy_image_archive", "images/proxy.tar", "is a relative path"),
}  # fmt: skip


@pytest.fixture(scope="module")
def run(ansible_env: AnsibleEnvironment, tmp_path_factory: pytest.TempPathFactory) -> PlaybookRun:
    artifact = tmp_path_factory.mktemp("agent") / "spectr-agent.pyz"
    artifact.write_text("stand-in: every case fails before copying it")
    hosts = {}
    for case, (role, base, name, value) in CASES.items():
        variables = {**base, "agent_artifact": str(artifact), name: value}
        if value is MISSING:
            del variables[name]
        hosts[case] = {"ansible_connection": "local", "role_under_test": role, **variables}
    for case, (role, base, name, value, _) in PATH_CASES.items():
        variables = {**base, "agent_artifact": str(artifact), name: value}
        hosts[case] = {"ansible_connection": "local", "role_under_test": role, **variables}
    inventory = ansible_env.write_inventory(hosts, "required-arguments")
    play = [{"name": "Each case runs one role", "hosts": "all", "gather_facts": False,
             "tasks": [{"name": "Run the role under test",
                        "ansible.builtin.include_role": {
                            "name": "spectr.core.{{ role_under_test }}"}}]}]  # fmt: skip
    return ansible_env.run_playbook(play, inventory, check=True, expect_failure=True)


@pytest.mark.parametrize("case", CASES)
def test_a_missing_or_empty_required_variable_fails_with_its_name(
    run: PlaybookRun, case: str
) -> None:
    _, _, name, value = CASES[case]

    failed = run.failed_tasks(host=case)

    assert len(failed) == 1, failed
    [(task, _)] = failed
    message = run.failure_text(case)
    assert name in message, (task, message)
    if value is MISSING:
        assert "argument" in task.lower() and "missing required arguments" in message
    else:
        assert "must not be empty" in message, message
    assert run.changed_count(case) == 0


@pytest.mark.parametrize("case", PATH_CASES)
def test_a_control_node_file_given_by_a_relative_or_absent_path_fails_with_its_name(
    run: PlaybookRun, case: str
) -> None:
    _, _, name, value, says = PATH_CASES[case]

    failed = run.failed_tasks(host=case)

    assert len(failed) == 1, failed
    message = run.failure_text(case)
    assert f"{name} must be the absolute path" in message, message
    assert f"{value} {says}" in message, message
    assert run.changed_count(case) == 0
