"""Fixtures: the portal (from tests.portal) and real registries on 127.0.0.1 (TLS + htpasswd)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from agent.tests.registry_process import RegistryProcess, free_port, start_registry
from portal.core.pki import ca_certificate_pem, issue_server_certificate
from portal.extensions import db
from portal.registry.engine_images import CERTS_DIR
from portal.registry.models import SPECTR, Registry
from tests.portal import conftest as portal_fixtures
from tests.support.process_group import stop_direct_service

# The portal's fixtures, shared with its tests (SQLite and Postgres apps, API clients).
app = portal_fixtures.app
any_db_app = portal_fixtures.any_db_app
api_as = portal_fixtures.api_as
client = portal_fixtures.client
create_user = portal_fixtures.create_user
postgres_database = portal_fixtures.postgres_database
postgres_migrated = portal_fixtures.postgres_migrated
sqlite_template = portal_fixtures.sqlite_template

USER, PASSWORD = "alice", "alice-registry-password"


@pytest.fixture
def start_test_registry(app: Flask, tmp_path: Path) -> Iterator[Callable[..., RegistryProcess]]:
    """Factory: a docker-registry process whose certificate comes from the portal's CA."""
    started: list[RegistryProcess] = []

    def start(
        name: str = "registry", user: str = USER, password: str = PASSWORD
    ) -> RegistryProcess:
        cert, key = issue_server_certificate("test registry", ["127.0.0.1", "localhost"])
        registry = start_registry(tmp_path / name, cert, key, ca_certificate_pem(), user, password)
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture
def registry_server(start_test_registry: Callable[..., RegistryProcess]) -> RegistryProcess:
    return start_test_registry()


@pytest.fixture
def spectr_registry(app: Flask, registry_server: RegistryProcess) -> Iterator[Registry]:
    """Record the test registry as Spectr's own (as a deploy would), run on this node."""
    row = Registry(
        name="spectr",
        kind=SPECTR,
        url=registry_server.url,
        username=registry_server.user,
        password=registry_server.password,
        ca_pem=registry_server.ca_pem,
        config_dir=str(registry_server.root),
        storage_path=str(registry_server.root / "data"),
    )
    db.session.add(row)
    db.session.commit()
    yield row
    # Pushes from the node's engine made it trust this registry's CA; forget it again.
    shutil.rmtree(CERTS_DIR / registry_server.address, ignore_errors=True)


@pytest.fixture
def deploy_request(tmp_path: Path) -> Iterator[dict]:
    """Deploy parameters that keep everything in a temporary folder; stop the service after."""
    name = f"spectr-test-registry-{uuid.uuid4().hex[:8]}"
    body = {
        "port": free_port(),
        "service_name": name,
        "config_dir": str(tmp_path / "config"),
        "storage_path": str(tmp_path / "storage"),
        "service_manager": "direct",  # no systemd on this machine
        "gc_schedule": "",  # no cron file outside the temporary folder
    }
    yield body
    stop_direct_service(name, "/usr/bin/docker-registry")
    Path(f"/run/{name}-gc.lock").unlink(missing_ok=True)
    Path(f"/var/log/spectr/{name}.log").unlink(missing_ok=True)
