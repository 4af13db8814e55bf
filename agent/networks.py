"""Network endpoints: list and remove."""

from __future__ import annotations

from typing import Any

from agent.docker_api import DockerAPI, quote_segment
from agent.shapes import network_summary
from agent.web import Request, Router


class NetworkRoutes:
    """Handlers bound to the agent's single Docker client."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("GET", "/v1/networks", self.list)
        router.add("DELETE", "/v1/networks/{id}", self.remove)

    def list(self, request: Request) -> tuple[int, Any]:
        """List networks."""
        entries = self.docker.request("GET", "/networks") or []
        return 200, [network_summary(entry) for entry in entries]

    def remove(self, request: Request) -> tuple[int, Any]:
        """Remove a network; running containers on it or a built-in network make it a 409."""
        self.docker.request("DELETE", f"/networks/{quote_segment(request.params['id'])}")
        return 204, None
