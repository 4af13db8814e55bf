"""Fixtures: a throw-away PKI, a real agent over TLS, containers from the test base image."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from agent.tests.harness import (
    AgentProcess,
    CertificateAuthority,
    LocalRegistry,
    base_image,
    unique_name,
)


class Pki:
    """The Spectr CA with server and client certificates, and a rogue CA with its own."""

    def __init__(self, folder: Path) -> None:
        self.ca = CertificateAuthority.create("spectr", folder)
        self.rogue = CertificateAuthority.create("rogue", folder)
        self.server = self.ca.issue("agent", server=True)
        self.client = self.ca.issue("portal", server=False)
        self.rogue_server = self.rogue.issue("agent", server=True)
        self.rogue_client = self.rogue.issue("portal", server=False)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates for every TLS test, made with cryptography."""
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def agent_factory(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., AgentProcess]]:
    """Return a function that starts an agent with extra settings; all stop at session end."""
    folder = tmp_path_factory.mktemp("agents")
    started: list[AgentProcess] = []

    def start(
        cert: tuple[str, str] | None = None, env: dict[str, str] | None = None, **settings: Any
    ) -> AgentProcess:
        process = AgentProcess(folder, cert or pki.server, **settings)
        process.env = env or {}
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    """One agent shared by the tests that do not stop or lock it."""
    return agent_factory()


@pytest.fixture()
def api(agent: AgentProcess, pki: Pki) -> Iterator[httpx.Client]:
    """An authenticated client of the shared agent."""
    with agent.http(pki.ca.cert_path) as client:
        yield client


@pytest.fixture(scope="session")
def image() -> str:
    """The test base image reference."""
    return base_image()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The docker SDK, to arrange and check state independently of the agent."""
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture()
def container_names(docker_client: docker.DockerClient) -> Iterator[Callable[[str], str]]:
    """Return unique container names; every container so named is removed afterwards."""
    names: list[str] = []

    def make(purpose: str) -> str:
        names.append(unique_name(purpose))
        return names[-1]

    yield make
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True, v=True)


@pytest.fixture()
def run_container(
    docker_client: docker.DockerClient, image: str, container_names: Callable[[str], str]
) -> Callable[..., Any]:
    """Start a container straight through Docker (not the agent) and return it."""

    def run(command: list[str], purpose: str = "c", **options: Any) -> Any:
        return docker_client.containers.run(
            image, command, name=container_names(purpose), detach=True, **options
        )

    return run


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A local registry holding tiny images for pull tests."""
    process = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def auth_registry(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A registry with TLS and htpasswd; Docker skips TLS checks for 127.0.0.0/8 registries."""
    from agent.tests.registry_process import start_registry

    cert_path, key_path = pki.ca.issue("registry", server=True)
    process = start_registry(
        tmp_path_factory.mktemp("auth-registry"), Path(cert_path).read_text(),
        Path(key_path).read_text(), Path(pki.ca.cert_path).read_text(),
        user="spectr", password=secrets.token_urlsafe(12),
    )  # fmt: skip
    yield process
    process.stop()
