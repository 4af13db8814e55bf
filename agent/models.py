"""Model cache endpoints: list, inspect, remove, and pull with streamed progress."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from agent.errors import ApiError, invalid
from agent.model_cache import (
    ModelCache,
    ModelCacheError,
    NotEnoughSpace,
    NotFound,
    SpecError,
    parse_spec,
)
from agent.web import Request, Router, StreamWriter

log = logging.getLogger(__name__)


class _ClientGone(Exception):
    """The client closed the pull's stream; the pull stops and its partial stays."""


def _api_error(error: ModelCacheError) -> ApiError:
    """Map the cache's errors to HTTP in one place."""
    if isinstance(error, SpecError):
        return invalid(str(error), field=error.field)
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, NotEnoughSpace):
        details = {"needed_bytes": error.needed, "free_bytes": error.free, "root": error.root,
                   "reserve_bytes": error.reserve}  # fmt: skip
        return ApiError(409, "not_enough_space", str(error), details)
    return ApiError(502, "fetch_failed", str(error))


class ModelRoutes:
    """Handlers bound to the agent's model cache (config `models_dir`)."""

    def __init__(self, root: str | Path) -> None:
        self.cache = ModelCache(root)
        try:
            self.cache.ensure()
        except OSError as error:  # answered per request: the rest of the agent still serves
            log.warning("models_dir %s is not usable: %s", root, error)

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("GET", "/v1/models", self.list)
        router.add("POST", "/v1/models/pull", self.pull)
        router.add("GET", "/v1/models/{digest}", self.inspect)
        router.add("DELETE", "/v1/models/{digest}", self.remove)

    def list(self, request: Request) -> tuple[int, Any]:
        """The cache: its folder, the free bytes of its disk, and the complete models."""
        try:
            free = self.cache.free_bytes()
        except OSError as error:
            raise ApiError(503, "unavailable", f"models_dir {self.cache.root}: {error}") from error
        return 200, {"root": str(self.cache.root), "free_bytes": free, "models": self.cache.list()}

    def inspect(self, request: Request) -> tuple[int, Any]:
        """Return one complete model."""
        try:
            return 200, self.cache.get(request.params["digest"])
        except ModelCacheError as error:
            raise _api_error(error) from error

    def remove(self, request: Request) -> tuple[int, Any]:
        """Remove a model and the blobs no other model uses."""
        try:
            return 200, {"freed_bytes": self.cache.remove(request.params["digest"])}
        except ModelCacheError as error:
            raise _api_error(error) from error

    def pull(self, request: Request) -> None:
        """Pull a model, streaming its events; 422 and 409 come before the stream starts."""
        try:
            spec = parse_spec(request.json())
            self.cache.ensure()
            self.cache.check_space(spec)
        except ModelCacheError as error:
            raise _api_error(error) from error
        except OSError as error:
            raise ApiError(503, "models_dir_unusable", f"{self.cache.root}: {error}") from error
        writer = request.stream()

        def send(event: dict[str, Any]) -> None:
            try:
                writer.write_json(event)
            except OSError as error:
                raise _ClientGone() from error

        try:
            self.cache.pull(spec, send)
        except _ClientGone:
            log.info("client left the pull of %s; its partial files stay", spec.digest)
        except (ModelCacheError, OSError) as error:
            _last_line(writer, str(error))
        except Exception:
            log.exception("model pull of %s failed", spec.digest)
            _last_line(writer, "the agent failed; see its log")
        finally:
            writer.close()


def _last_line(writer: StreamWriter, message: str) -> None:
    with contextlib.suppress(OSError):
        writer.write_json({"event": "error", "message": message})
