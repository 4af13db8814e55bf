"""API errors of the agent and their mapping from Docker engine errors."""

from __future__ import annotations

from typing import Any

from agent.docker_api import DockerError


class ApiError(Exception):
    """An error answered to the client as {"code", "message", "details"}."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON error document."""
        return {"code": self.code, "message": self.message, "details": self.details}


def bad_request(message: str, **details: Any) -> ApiError:
    """Build a 400 for input the agent cannot parse."""
    return ApiError(400, "bad_request", message, details)


def invalid(message: str, **details: Any) -> ApiError:
    """Build a 422 for well-formed input that breaks a rule."""
    return ApiError(422, "invalid", message, details)


def from_docker(error: DockerError) -> ApiError:
    """Map an engine error: 404 -> 404, 409 and 403 -> 409, 400 -> 400, anything else -> 502."""
    if error.status == 404:
        return ApiError(404, "not_found", error.message)
    # The engine's 403 refuses an action the object forbids (a built-in network, a network
    # with running containers), like a 409; the agent's own 403 would read as a bad token.
    if error.status in (403, 409):
        return ApiError(409, "conflict", error.message)
    if error.status == 400:
        return ApiError(400, "engine_rejected", error.message)
    if error.status == 0:
        return ApiError(502, "engine_unreachable", error.message)
    return ApiError(502, "engine_error", error.message, {"engine_status": error.status})
