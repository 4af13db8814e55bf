"""registry role, registry_info and registry_image against real registries on a test host.

Two registries (Debian's docker-registry, TLS + htpasswd) run on one DinD test host, deployed by
spectr.core.registry. The modules run on that host over SSH, each task twice: changed, then not.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.tests.registry_seed import push_tiny_image
from tests.collection.ansible_runs import AnsibleEnvironment
from tests.collection.tls import TestCA
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]

USERS = {"source": ("alice", "alice-registry-pw"), "mirror": ("bob", "bob-registry-pw")}
PORTS = {"source": 5000, "mirror": 5001}


@pytest.fixture(scope="module")
def registry_host() -> Iterator[TestHost]:
    """A DinD-image host (its engine stays off: the registries run as services)."""
    host = start_test_host("registry", dind=True, start_docker=False, extra_ports=(5000, 5001))
    yield host
    host.remove()
    cleanup_key_pair(host.key_pair)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def inventory(ansible_env: AnsibleEnvironment, registry_host: TestHost) -> Path:
    return ansible_env.write_inventory({"testhost": registry_host.inventory_vars()}, "registry")


def registry_play(ca: TestCA, name: str) -> list[dict[str, Any]]:
    """Plays deploying one registry with spectr.core.registry."""
    cert = ca.issue()
    user, password = USERS[name]
    role_vars = {
        "registry_name": f"registry-{name}",
        "registry_port": PORTS[name],
        "registry_config_dir": f"/etc/registry-{name}",
        "registry_storage_path": f"/var/lib/registry-{name}",
        "registry_tls_cert": cert.cert_pem,
        "registry_tls_key": cert.key_pem,
        "registry_users": [{"name": user, "password": password}],
    }
    return [
        {
            "name": f"Deploy the {name} registry",
            "hosts": "testhost",
            "roles": [{"role": "spectr.core.registry", "vars": role_vars}],
        }
    ]


def module_play(ca: TestCA, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A play that trusts the test CA on the host, then runs the given tasks."""
    trust = {
        "name": "Put the test CA on the host",
        "ansible.builtin.copy": {
            "content": ca.cert_pem,
            "dest": "/tmp/test-ca.pem",
            "mode": "0644",
        },
    }
    return [{"name": "Registry modules", "hosts": "testhost", "gather_facts": False,
             "tasks": [trust, *tasks]}]  # fmt: skip


def auth_args(name: str) -> dict[str, Any]:
    user, password = USERS[name]
    return {
        "registry_url": f"https://127.0.0.1:{PORTS[name]}",
        "username": user,
        "password": password,
        "ca_path": "/tmp/test-ca.pem",
    }


def http_client(host: TestHost, name: str, ca_file: Path) -> httpx.Client:
    """A client reaching a registry on the host through its published port."""
    return httpx.Client(
        base_url=f"https://127.0.0.1:{host.published_ports[PORTS[name]]}",
        auth=USERS[name],
        verify=ssl.create_default_context(cafile=str(ca_file)),
        timeout=30,
    )


@pytest.fixture(scope="module")
def deployed(
    ansible_env: AnsibleEnvironment, inventory: Path, ca: TestCA, registry_host: TestHost
) -> dict[str, Any]:
    """Deploy both registries twice; return the runs for assertions."""
    runs = {}
    for name in ("source", "mirror"):
        play = registry_play(ca, name)
        runs[name] = (
            ansible_env.run_playbook(play, inventory),
            ansible_env.run_playbook(play, inventory),
        )
    return runs


def test_registry_role_deploys_then_changes_nothing(
    deployed: dict[str, Any], registry_host: TestHost
) -> None:
    for name in ("source", "mirror"):
        first, second = deployed[name]
        assert first.changed_count() > 0
        assert second.changed_count() == 0, f"{name}: second run changed something"
    command_line = registry_host.ssh(
        "sh", "-c", "'tr \\\\0 \\  </proc/$(cat /run/registry-source.pid)/cmdline'"
    )
    assert command_line.split() == [
        "/usr/bin/docker-registry",
        "serve",
        "/etc/registry-source/config.yml",
    ]


def test_registry_refuses_requests_without_credentials(
    deployed: dict[str, Any], registry_host: TestHost, tmp_path: Path, ca: TestCA
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    port = registry_host.published_ports[5000]

    answer = httpx.get(
        f"https://127.0.0.1:{port}/v2/", verify=ssl.create_default_context(cafile=str(ca_file))
    )

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_copy_list_and_delete_twice_each(
    deployed: dict[str, Any],
    ansible_env: AnsibleEnvironment,
    inventory: Path,
    registry_host: TestHost,
    ca: TestCA,
    tmp_path: Path,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    with http_client(registry_host, "source", ca_file) as source:
        digest = push_tiny_image(source, "models/hello", "v1", b"hello from the source")
    copy = {
        **auth_args("mirror"),
        "repository": "mirror/hello",
        "tag": "v1",
        "source": {**auth_args("source"), "repository": "models/hello", "reference": "v1"},
    }
    delete = {**auth_args("mirror"), "repository": "mirror/hello", "tag": "v1", "state": "absent"}
    tasks = [
        {"name": "List the source", "spectr.core.registry_info": auth_args("source"), "register": "listing"},
        {"name": "Copy once", "spectr.core.registry_image": copy},
        {"name": "Copy again", "spectr.core.registry_image": copy},
        {"name": "List the mirror", "spectr.core.registry_info": {**auth_args("mirror"), "repository": "mirror/hello"}},
        {"name": "Delete once", "spectr.core.registry_image": delete},
        {"name": "Delete again", "spectr.core.registry_image": delete},
        {"name": "List the mirror afterwards", "spectr.core.registry_info": {**auth_args("mirror"), "repository": "mirror/hello"}},
    ]  # fmt: skip

    run = ansible_env.run_playbook(module_play(ca, tasks), inventory, diff=True)

    assert run.task("List the source")["repositories"] == [{"name": "models/hello", "tags": ["v1"]}]
    first, second = run.task("Copy once"), run.task("Copy again")
    assert (first["changed"], second["changed"]) == (True, False)
    assert first["digest"] == second["digest"] == digest
    assert first["blobs_copied"] == 2 and second["blobs_copied"] == 0
    assert first["diff"] == {"before": {"digest": None}, "after": {"digest": digest}}
    assert run.task("List the mirror")["repositories"] == [{"name": "mirror/hello", "tags": ["v1"]}]
    assert (run.task("Delete once")["changed"], run.task("Delete again")["changed"]) == (
        True,
        False,
    )
    assert run.task("List the mirror afterwards")["repositories"] == [
        {"name": "mirror/hello", "tags": []}
    ]


def test_check_mode_copy_reports_a_change_and_copies_nothing(
    deployed: dict[str, Any],
    ansible_env: AnsibleEnvironment,
    inventory: Path,
    registry_host: TestHost,
    ca: TestCA,
    tmp_path: Path,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    with http_client(registry_host, "source", ca_file) as source:
        push_tiny_image(source, "models/dry", "v1", b"dry run")
    copy = {
        **auth_args("mirror"),
        "repository": "mirror/dry",
        "source": {**auth_args("source"), "repository": "models/dry", "reference": "v1"},
    }
    tasks = [{"name": "Copy in check mode", "spectr.core.registry_image": copy}]

    run = ansible_env.run_playbook(module_play(ca, tasks), inventory, check=True)

    assert run.task("Copy in check mode")["changed"] is True
    with http_client(registry_host, "mirror", ca_file) as mirror:
        assert mirror.get("/v2/mirror/dry/tags/list").status_code == 404


def test_wrong_password_fails_with_the_registry_answer(
    deployed: dict[str, Any], ansible_env: AnsibleEnvironment, inventory: Path, ca: TestCA
) -> None:
    args = {**auth_args("source"), "password": "not-the-password"}
    tasks = [{"name": "List with a wrong password", "spectr.core.registry_info": args}]

    run = ansible_env.run_playbook(module_play(ca, tasks), inventory, expect_failure=True)

    result = run.task("List with a wrong password")
    assert result["failed"] is True
    assert "answered 401" in result["msg"]
    assert "not-the-password" not in str(result)


def test_garbage_collection_script_collects_in_a_read_only_window(
    deployed: dict[str, Any], registry_host: TestHost, ca: TestCA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    with http_client(registry_host, "source", ca_file) as source:
        push_tiny_image(source, "gc/kept", "v1", b"kept through the collection")

    said = registry_host.ssh("/etc/registry-source/registry-maintenance", "garbage-collect")

    assert "read-only (direct): pushes are refused with 405" in said
    assert "read-write again" in said and "read-only window:" in said
    with http_client(registry_host, "source", ca_file) as source:
        assert source.get("/v2/gc/kept/tags/list").json()["tags"] == ["v1"]
        assert source.post("/v2/gc/after/blobs/uploads/").status_code == 202  # writable again
