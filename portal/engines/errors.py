"""Errors every ContainerEngine raises; the portal maps them to HTTP in one place."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """A Docker host could not do what was asked (the engine or the agent failed)."""

    code = "engine_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(EngineError):
    """No such container, image or exec."""

    code = "not_found"


class Conflict(EngineError):
    """The object's state forbids the action (name taken, image in use, container stopped)."""

    code = "conflict"


class BadRequest(EngineError):
    """The engine or agent refused the input."""

    code = "bad_request"


class Unavailable(EngineError):
    """The host, its agent or its engine cannot be reached now (or its circuit is open)."""

    code = "unavailable"


class Incompatible(EngineError):
    """The agent speaks a contract major this portal does not (portal/engines/contracts.py)."""

    code = "incompatible_agent"
