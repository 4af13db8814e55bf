"""The agent's route table: health, facts, OpenAPI, metrics, images, containers, streams,
models, volumes, networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

from agent import CONTRACT, __version__
from agent.containers import ContainerRoutes
from agent.docker_api import DockerError
from agent.facts import gpu_telemetry, host_facts
from agent.images import ImageRoutes
from agent.metrics import AgentMetrics
from agent.models import ModelRoutes
from agent.networks import NetworkRoutes
from agent.openapi import openapi_document
from agent.streams import StreamRoutes
from agent.terminal import TerminalRoutes
from agent.volumes import VolumeRoutes
from agent.web import RawBody, Request, Router

if TYPE_CHECKING:
    from agent.server import AgentApp


def build_router(app: AgentApp) -> Router:
    """Return a router with every endpoint bound to the app's Docker client."""
    router = Router()
    docker = app.docker
    metrics = AgentMetrics(docker)

    def health(request: Request) -> tuple[int, Any]:
        """Report the agent's version and whether the engine answers."""
        engine: dict[str, Any] = {"reachable": True}
        try:
            version = docker.request("GET", "/version", timeout=5)
            engine.update(version=version.get("Version"), api_version=version.get("ApiVersion"))
        except DockerError as error:
            engine = {"reachable": False, "error": error.message}
        status = "ok" if engine["reachable"] else "degraded"
        # GPU readings ride on the health check the portal makes every sweep: its host page
        # charts them over time. [] without nvidia-smi; one call of it when there is one.
        body = {"status": status, "agent_version": __version__, "contract": CONTRACT}
        return 200, {**body, "engine": engine, "gpus": gpu_telemetry()}

    router.add("GET", "/v1/health", health)
    router.add("GET", "/v1/facts", lambda request: (200, host_facts(docker)))
    router.add("GET", "/v1/openapi.json", lambda request: (200, openapi_document()))
    router.add(
        "GET", "/metrics", lambda request: (200, RawBody(CONTENT_TYPE_LATEST, metrics.render()))
    )
    ImageRoutes(docker).register(router)
    ContainerRoutes(docker).register(router)
    StreamRoutes(docker).register(router)
    TerminalRoutes(docker).register(router)
    VolumeRoutes(docker).register(router)
    NetworkRoutes(docker).register(router)
    ModelRoutes(app.config.models_dir).register(router)
    return router
