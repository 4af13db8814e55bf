"""deploy/install-spectr.yml on a bare Debian host (a test host over SSH, no systemd inside, so
the service role runs start-stop-daemon), with the machine's Postgres and Redis relayed to it."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.collection.ansible_runs import AnsibleEnvironment
from tests.deploy.stack import (
    DEPLOY,
    POSTGRES_URL,
    REDIS_URL,
    admin_api,
    docker_bridge_address,
    finished_operation,
    relays,
    run_build_images,
    temporary_database,
)
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def bare_host() -> Iterator[TestHost]:
    host = start_test_host("deploy-bare", extra_ports=(8000,))
    try:
        yield host
    finally:
        host.remove()
        cleanup_key_pair(host.key_pair)


def test_playbook_installs_spectr_as_services_and_a_rerun_changes_nothing(
    bare_host: TestHost, tmp_path: Path
) -> None:
    # The test hosts are built from the test base image, so its Python is theirs.
    wheelhouse = run_build_images("--wheelhouse-only")["SPECTR_WHEELHOUSE"]
    postgres, redis = make_url(POSTGRES_URL), make_url(REDIS_URL)
    bridge = docker_bridge_address()
    admin_password = secrets.token_urlsafe(12)
    with (
        relays({"postgres": (postgres.host, postgres.port or 5432),
                "redis": (redis.host, redis.port or 6379)}) as ports,
        temporary_database(POSTGRES_URL) as database,
    ):  # fmt: skip
        ansible = AnsibleEnvironment(home=tmp_path)
        inventory = ansible.write_inventory({"testhost": bare_host.inventory_vars()})
        extra_vars = {
            "spectr_hosts": "testhost",
            "spectr_wheelhouse": wheelhouse,
            "spectr_secret_key": secrets.token_urlsafe(48),
            "spectr_encryption_keys": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "spectr_admin_password": admin_password,
            "spectr_bind": "0.0.0.0:8000",
            "spectr_settings": {
                "SPECTR_DATABASE_URL": (
                    f"postgresql+psycopg://{postgres.username}@{bridge}:{ports['postgres']}/{database}"
                ),
                "SPECTR_REDIS_URL": f"redis://{bridge}:{ports['redis']}/0",
                "SPECTR_QUEUE_NAME": database,
            },
        }
        playbook = DEPLOY / "install-spectr.yml"
        first = ansible.run_playbook(playbook, inventory, extra_vars)
        assert first.task("Create the first admin")["changed"] is True

        assert bare_host.exec("stat", "-c", "%a %U", "/etc/spectr/spectr.env").split() == [
            "600",
            "spectr",
        ]
        processes = bare_host.exec("ps", "-eo", "user:16,args")
        assert any(
            line.startswith("spectr ") and "gunicorn" in line for line in processes.splitlines()
        )
        assert any(
            line.startswith("spectr ") and "spectr worker" in line
            for line in processes.splitlines()
        )

        portal = f"http://127.0.0.1:{bare_host.published_ports[8000]}"
        assert httpx.get(f"{portal}/healthz", timeout=5).json()["status"] == "ok"
        with admin_api(portal, admin_password) as api:
            accepted = api.post("/api/v1/operations", json={"kind": "noop"})
            assert accepted.status_code == 202, accepted.text
            done = finished_operation(api, accepted.headers["Location"])
            assert done["state"] == "succeeded", done

        again = ansible.run_playbook(playbook, inventory, extra_vars)
        assert again.changed_count("testhost") == 0, [
            task["task"]["name"]
            for play in again.report["plays"]
            for task in play["tasks"]
            if task["hosts"].get("testhost", {}).get("changed")
        ]
