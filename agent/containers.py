"""Container endpoints: list, create/run, inspect, start, stop, restart, remove, stats."""

from __future__ import annotations

import json
from typing import Any

from agent.docker_api import DockerAPI, DockerError, quote_segment
from agent.errors import bad_request
from agent.shapes import container_from_inspect, container_from_list, stats_summary
from agent.specs import container_create_body
from agent.web import Request, Router

_MAX_STOP_TIMEOUT = 3600


def _path(request: Request, suffix: str = "") -> str:
    return f"/containers/{quote_segment(request.params['id'])}{suffix}"


def label_filters(request: Request) -> list[str]:
    """Return the request's repeated label=KEY or label=KEY=VALUE filters, checked."""
    labels = request.query.get("label", [])
    for label in labels:
        if not label or label.startswith("="):
            raise bad_request(f"label filter must be KEY or KEY=VALUE, got {label!r}")
    return labels


class ContainerRoutes:
    """Handlers bound to the agent's single Docker client."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("GET", "/v1/containers", self.list)
        router.add("POST", "/v1/containers", self.create)
        router.add("GET", "/v1/containers/{id}", self.inspect)
        router.add("DELETE", "/v1/containers/{id}", self.remove)
        router.add("POST", "/v1/containers/{id}/start", self.start)
        router.add("POST", "/v1/containers/{id}/stop", self.stop)
        router.add("POST", "/v1/containers/{id}/restart", self.restart)
        router.add("GET", "/v1/containers/{id}/stats", self.stats)

    def list(self, request: Request) -> tuple[int, Any]:
        """List containers, all or running, filtered by labels (every filter must match)."""
        filters: dict[str, list[str]] = {}
        labels = label_filters(request)
        if labels:
            filters["label"] = labels
        params = {"all": int(request.flag("all", True)), "filters": json.dumps(filters)}
        entries = self.docker.request("GET", "/containers/json", params)
        return 200, [container_from_list(entry) for entry in entries]

    def create(self, request: Request) -> tuple[int, Any]:
        """Create a container from a spec and start it unless "start" is false."""
        spec = request.json()
        name, body = container_create_body(spec)
        created = self.docker.request("POST", "/containers/create", {"name": name}, body)
        started = bool(spec.get("start", True))
        if started:
            try:
                self.docker.request("POST", f"/containers/{created['Id']}/start")
            except DockerError:
                # a run that cannot start leaves nothing behind, so the caller can retry the name
                self.docker.request("DELETE", f"/containers/{created['Id']}", {"force": 1})
                raise
        answer = {
            "id": created["Id"],
            "name": name,
            "started": started,
            "warnings": created.get("Warnings") or [],
        }
        return 201, answer

    def inspect(self, request: Request) -> tuple[int, Any]:
        """Return the container's shape with the engine's document under raw."""
        return 200, container_from_inspect(self.docker.request("GET", _path(request, "/json")))

    def remove(self, request: Request) -> tuple[int, Any]:
        """Remove the container (force kills a running one; volumes drops anonymous volumes)."""
        params = {"force": int(request.flag("force")), "v": int(request.flag("volumes"))}
        self.docker.request("DELETE", _path(request), params)
        return 204, None

    def start(self, request: Request) -> tuple[int, Any]:
        """Start the container; starting a running one succeeds."""
        self.docker.request("POST", _path(request, "/start"))
        return 204, None

    def _timed(self, request: Request, action: str) -> tuple[int, Any]:
        timeout = request.int_arg("timeout", 10)
        if timeout is not None and timeout > _MAX_STOP_TIMEOUT:
            raise bad_request(f"timeout must be <= {_MAX_STOP_TIMEOUT} seconds")
        wait = (timeout or 0) + 30
        self.docker.request("POST", _path(request, f"/{action}"), {"t": timeout}, timeout=wait)
        return 204, None

    def stop(self, request: Request) -> tuple[int, Any]:
        """Stop the container, killing it after timeout seconds; stopping a stopped one succeeds."""
        return self._timed(request, "stop")

    def restart(self, request: Request) -> tuple[int, Any]:
        """Restart the container with a stop timeout."""
        return self._timed(request, "restart")

    def stats(self, request: Request) -> tuple[int, Any]:
        """Return one stats sample (CPU percent over the engine's ~1 s window)."""
        sample = self.docker.request("GET", _path(request, "/stats"), {"stream": 0})
        if not isinstance(sample, dict):
            # A container being removed answers with no sample: say what it is now (gone: 404,
            # stopped: 409) rather than blame the engine; only a running one is a 502.
            state = self.docker.request("GET", _path(request, "/json")).get("State") or {}
            if not state.get("Running"):
                raise DockerError(409, "the container is not running: it has no stats")
            raise DockerError(502, "the engine answered without a stats sample")
        return 200, stats_summary(sample)
