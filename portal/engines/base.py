"""The ContainerEngine contract: what the portal needs from one Docker host."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping
from typing import Any

from portal.engines.errors import BadRequest
from portal.engines.models import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineHealth,
    ExecChunk,
    ExecExit,
    ExecResult,
    ImageInfo,
    LogChunk,
    NetworkInfo,
    PruneResult,
    PullProgress,
    VolumeInfo,
)
from portal.engines.terminal import TerminalSession, TerminalSize

ProgressCallback = Callable[[PullProgress], None]
ModelEventCallback = Callable[[dict[str, Any]], None]
# Generators, so a caller that stops early (a client that left) calls close() to end the stream
LogStream = Generator[LogChunk, None, None]
ExecStream = Generator[ExecChunk | ExecExit, None, None]
LabelFilter = Mapping[str, str | None]  # a None value matches any value of the key


class ContainerEngine(ABC):
    """Images, containers, exec and logs on one Docker host; errors from portal.engines.errors."""

    @abstractmethod
    def health(self) -> EngineHealth:
        """Report whether the engine answers; never raises for an unreachable host."""

    @abstractmethod
    def facts(self) -> dict[str, Any]:
        """Return host facts: hostname, os, kernel, cpu, memory, disks, docker, gpus."""

    @abstractmethod
    def list_images(self) -> list[ImageInfo]:
        """List local images."""

    @abstractmethod
    def inspect_image(self, reference: str) -> ImageInfo:
        """Return one image by reference or id."""

    @abstractmethod
    def pull_image(
        self,
        reference: str,
        auth: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ImageInfo:
        """Pull an image (name:tag, or name for :latest), reporting progress events."""

    @abstractmethod
    def remove_image(self, reference: str, force: bool = False) -> None:
        """Remove an image."""

    @abstractmethod
    def prune_images(self, labels: LabelFilter | None = None) -> PruneResult:
        """Remove dangling images (untagged, used by no container) carrying every given label."""

    @abstractmethod
    def list_volumes(self) -> list[VolumeInfo]:
        """List volumes with their sizes where the engine measures them."""

    @abstractmethod
    def remove_volume(self, name: str, force: bool = False) -> None:
        """Remove a volume; one that a container uses raises Conflict."""

    @abstractmethod
    def prune_volumes(self, labels: LabelFilter | None = None) -> PruneResult:
        """Remove every volume no container uses (named ones too) carrying every given label."""

    @abstractmethod
    def list_networks(self) -> list[NetworkInfo]:
        """List networks."""

    @abstractmethod
    def remove_network(self, network_id: str) -> None:
        """Remove a network; one with running containers or a built-in one raises Conflict."""

    @abstractmethod
    def list_containers(
        self, labels: LabelFilter | None = None, include_stopped: bool = True
    ) -> list[ContainerInfo]:
        """List containers carrying every given label."""

    @abstractmethod
    def create_container(self, spec: ContainerSpec, start: bool = True) -> ContainerInfo:
        """Create a container (and start it unless start is False)."""

    @abstractmethod
    def inspect_container(self, container_id: str) -> ContainerInfo:
        """Return one container by id or name."""

    @abstractmethod
    def start_container(self, container_id: str) -> None:
        """Start a container; a running one is left as it is."""

    @abstractmethod
    def stop_container(self, container_id: str, timeout: int = 10) -> None:
        """Stop a container, killing it after timeout seconds."""

    @abstractmethod
    def restart_container(self, container_id: str, timeout: int = 10) -> None:
        """Restart a container."""

    @abstractmethod
    def remove_container(
        self, container_id: str, force: bool = False, volumes: bool = False
    ) -> None:
        """Remove a container."""

    @abstractmethod
    def container_stats(self, container_id: str) -> ContainerStats:
        """Return one resource sample."""

    @abstractmethod
    def logs(
        self,
        container_id: str,
        follow: bool = False,
        since: float | None = None,
        tail: int | None = None,
        timestamps: bool = False,
        read_timeout_s: float | None = None,
    ) -> LogStream:
        """Yield log frames; with follow, until the container stops. close() ends early.

        A stream that brings nothing for `read_timeout_s` (the engine's default when None)
        raises Unavailable: a follower resumes it with `since`, so no reader waits forever
        on a connection that died without a word.
        """

    @abstractmethod
    def exec_stream(
        self,
        container_id: str,
        argv: list[str],
        user: str | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecStream:
        """Run argv (no shell) in a running container; yield output, then one ExecExit."""

    def open_terminal(
        self, container_id: str, argv: list[str], size: TerminalSize, user: str | None = None
    ) -> TerminalSession:
        """Start argv with a TTY and stdin in a running container: an interactive console."""
        raise BadRequest("This host's engine offers no interactive console.")

    @abstractmethod
    def model_cache(self) -> dict[str, Any]:
        """The host's model cache: {"root", "free_bytes", "models": [{digest, path, size_bytes}]}."""

    @abstractmethod
    def pull_model(self, spec: dict[str, Any], on_event: ModelEventCallback) -> dict[str, Any]:
        """Fetch a model's files from a registry into the cache (resumed, sha256-checked).

        Events (start, progress, file, done) go to on_event; returns the done event. A model
        that does not fit on the disk raises Conflict before anything is fetched.
        """

    @abstractmethod
    def remove_model(self, digest: str) -> int:
        """Delete a model from the cache (and the files no other model shares); bytes freed."""

    def exec_run(
        self,
        container_id: str,
        argv: list[str],
        user: str | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Run argv and collect its output and exit code."""
        out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        end = ExecExit(exit_code=None)
        for event in self.exec_stream(container_id, argv, user, workdir, env, timeout):
            if isinstance(event, ExecExit):
                end = event
            else:
                out[event.stream].append(event.data)
        return ExecResult(
            end.exit_code, "".join(out["stdout"]), "".join(out["stderr"]), end.timed_out
        )

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> ContainerEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
