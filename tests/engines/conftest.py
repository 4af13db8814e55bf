"""Engines under test: LocalDockerEngine and AgentEngine (through a real agent), same engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.tests.conftest import (  # noqa: F401  (fixtures shared with the agent's tests)
    agent,
    agent_factory,
    auth_registry,
    container_names,
    docker_client,
    image,
    pki,
    registry,
    run_container,
)
from portal.engines import AgentEngine, ContainerEngine, LocalDockerEngine, RetryPolicy
from portal.engines.resilience import CircuitBreaker
from tests.support.docker_objects import made  # noqa: F401 - Docker objects a test makes


@pytest.fixture(params=["local", "agent"])
def engine(request: pytest.FixtureRequest) -> Iterator[ContainerEngine]:
    """Each contract test runs once per implementation."""
    if request.param == "local":
        engine: ContainerEngine = LocalDockerEngine()
    else:
        agent_process = request.getfixturevalue("agent")
        ca = request.getfixturevalue("pki").ca.cert_path
        engine = AgentEngine(agent_process.url, agent_process.token, ca,
                             retry=RetryPolicy(attempts=2), breaker=CircuitBreaker())  # fmt: skip
    yield engine
    engine.close()
