"""Factories for catalog and apps tests: hosts with stand-in GPUs, seeded catalog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from portal.extensions import db
from portal.hosts.models import Host, HostGpu
from tests.portal.conftest import (  # noqa: F401 - fixtures shared with the portal's tests
    any_db_app,
    api_as,
    app,
    client,
    create_user,
    postgres_database,
    postgres_migrated,
    sqlite_template,
)


@pytest.fixture
def make_host(app: Flask) -> Callable[..., Host]:  # noqa: F811 - the portal's app fixture
    """Factory: a host row whose GPUs are stand-ins (this machine has no GPU).

    gpus is a list of (model, total MiB, used MiB), as a host's nvidia-smi facts would give.
    """

    def make(
        name: str, gpus: list[tuple[str, int, int]] = (), status: str = "ready", **fields: Any
    ) -> Host:
        host = Host(name=name, address="192.0.2.1", status=status, **fields)
        host.gpus = [
            HostGpu(index=i, model=model, memory_total_mib=total, memory_used_mib=used)
            for i, (model, total, used) in enumerate(gpus)
        ]
        db.session.add(host)
        db.session.commit()
        return host

    return make


@pytest.fixture
def seeded(app: Flask) -> dict[str, int]:  # noqa: F811 - the portal's app fixture
    from portal.catalog.seeding import seed_catalog

    return seed_catalog()
