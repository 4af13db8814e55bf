"""LocalDockerEngine: the ContainerEngine of the Spectr node itself, over its Docker socket."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors
import docker.utils
import requests
import urllib3.exceptions

from portal.engines.base import (
    ContainerEngine,
    ExecStream,
    LabelFilter,
    LogStream,
    ModelEventCallback,
    ProgressCallback,
)
from portal.engines.docker_shapes import (
    container_from_inspect,
    container_from_list,
    image_from_document,
    local_facts,
    network_from_document,
    stats_from_sample,
    volume_from_document,
    volume_sizes,
)
from portal.engines.errors import (
    BadRequest,
    Conflict,
    EngineError,
    NotFound,
    Unavailable,
)
from portal.engines.models import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineHealth,
    ExecChunk,
    ExecExit,
    ImageInfo,
    LogChunk,
    NetworkInfo,
    PruneResult,
    PullProgress,
    VolumeInfo,
)
from portal.engines.sdk_translation import host_config_args, label_filters, translate_errors
from portal.engines.terminal import DEFAULT_TERM, TerminalSession, TerminalSize

_STREAMS = {1: "stdout", 2: "stderr"}
DEFAULT_MODELS_DIR = "/var/lib/spectr/models"
EXEC_PID_WAIT_S = 10.0


@contextlib.contextmanager
def _model_errors() -> Any:
    """The model cache's errors as the engine contract's, like the agent maps them to HTTP."""
    from agent import model_cache as cache

    try:
        yield
    except cache.SpecError as exc:
        raise BadRequest(str(exc)) from None
    except cache.NotFound as exc:
        raise NotFound(str(exc)) from None
    except cache.NotEnoughSpace as exc:
        raise Conflict(str(exc)) from None
    except (cache.ModelCacheError, OSError) as exc:
        raise EngineError(f"model cache: {exc}") from None


def _stamped(line: bytes) -> LogChunk:
    stamp, _, text = line.decode(errors="replace").partition(" ")
    return LogChunk("stdout", text, stamp)


class LocalDockerEngine(ContainerEngine):
    """Drive the Docker engine on this machine with the docker SDK."""

    def __init__(
        self, base_url: str | None = None, timeout_s: int = 60, models_dir: str | None = None
    ) -> None:
        # The node's model cache has the agents' layout, kept by the agent's own code.
        self._models_dir = models_dir or DEFAULT_MODELS_DIR
        if base_url:
            self._client = docker.DockerClient(base_url=base_url, timeout=timeout_s)
        else:
            self._client = docker.from_env(timeout=timeout_s)
        self._api = self._client.api

    def __repr__(self) -> str:
        return f"LocalDockerEngine({self._api.base_url!r})"

    def close(self) -> None:
        """Close the SDK's connection pool."""
        self._client.close()

    def health(self) -> EngineHealth:
        """Report whether the local engine answers; never raises."""
        try:
            version = self._api.version()
        except (docker.errors.DockerException, requests.RequestException) as error:
            return EngineHealth(reachable=False, error=str(error))
        return EngineHealth(reachable=True, engine_version=version.get("Version"))

    @translate_errors
    def facts(self) -> dict[str, Any]:
        """Return facts of this node, as the engine reports them."""
        return local_facts(self._api.info(), self._api.version())

    @translate_errors
    def list_images(self) -> list[ImageInfo]:
        """List local images."""
        return [image_from_document(item) for item in self._api.images()]

    @translate_errors
    def inspect_image(self, reference: str) -> ImageInfo:
        """Return one image."""
        return image_from_document(self._api.inspect_image(reference))

    @translate_errors
    def pull_image(
        self,
        reference: str,
        auth: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ImageInfo:
        """Pull an image, passing progress events on; raise on a pull error."""
        name, _, tag = reference.rpartition(":")
        if not name or "/" in tag or "@" in reference:
            name, tag = reference, "latest" if "@" not in reference else ""
        events = self._api.pull(
            name,
            tag=tag or None,
            stream=True,
            decode=True,
            auth_config=dict(auth) if auth else None,
        )
        for event in events:
            if "error" in event:
                raise EngineError(str(event["error"]))
            if progress is not None:
                detail = event.get("progressDetail") or {}
                progress(
                    PullProgress(
                        event.get("status", ""),
                        event.get("id"),
                        detail.get("current"),
                        detail.get("total"),
                    )
                )
        return self.inspect_image(reference)

    def model_cache(self) -> dict[str, Any]:
        """The node's model cache: root, free bytes and the complete models."""
        with _model_errors():
            cache = self._cache()
            return {
                "root": str(cache.root),
                "free_bytes": cache.free_bytes(),
                "models": cache.list(),
            }

    def pull_model(self, spec: dict[str, Any], on_event: ModelEventCallback) -> dict[str, Any]:
        """Fetch a model into the node's cache with the agent's own code (same layout)."""
        with _model_errors():
            return self._cache().pull(spec, on_event)

    def remove_model(self, digest: str) -> int:
        """Delete a model from the node's cache; return the bytes freed."""
        with _model_errors():
            return self._cache().remove(digest)

    def _cache(self) -> Any:
        from agent.model_cache import ModelCache

        cache = ModelCache(self._models_dir)
        cache.ensure()
        return cache

    @translate_errors
    def remove_image(self, reference: str, force: bool = False) -> None:
        """Remove an image."""
        self._api.remove_image(reference, force=force)

    @translate_errors
    def prune_images(self, labels: LabelFilter | None = None) -> PruneResult:
        """Remove dangling images with every given label."""
        filters: dict[str, Any] = {"dangling": True, "label": label_filters(labels)}
        answer = self._api.prune_images({k: v for k, v in filters.items() if v}) or {}
        deleted = [i["Deleted"] for i in answer.get("ImagesDeleted") or [] if "Deleted" in i]
        return PruneResult(deleted, answer.get("SpaceReclaimed") or 0)

    @translate_errors
    def list_volumes(self) -> list[VolumeInfo]:
        """List volumes with the sizes the engine's disk usage report gives."""
        sizes = volume_sizes(self._api.df())
        volumes = self._api.volumes().get("Volumes") or []
        return [volume_from_document(v, sizes.get(v["Name"])) for v in volumes]

    @translate_errors
    def remove_volume(self, name: str, force: bool = False) -> None:
        """Remove a volume."""
        self._api.remove_volume(name, force=force)

    @translate_errors
    def prune_volumes(self, labels: LabelFilter | None = None) -> PruneResult:
        """Remove unused volumes, named ones too, with every given label."""
        filters: dict[str, Any] = {"label": label_filters(labels)}
        if docker.utils.version_gte(self._api.api_version, "1.42"):
            filters["all"] = True  # from API 1.42 a prune leaves named volumes unless told
        answer = self._api.prune_volumes({k: v for k, v in filters.items() if v}) or {}
        return PruneResult(answer.get("VolumesDeleted") or [], answer.get("SpaceReclaimed") or 0)

    @translate_errors
    def list_networks(self) -> list[NetworkInfo]:
        """List networks."""
        return [network_from_document(entry) for entry in self._api.networks()]

    @translate_errors
    def remove_network(self, network_id: str) -> None:
        """Remove a network."""
        self._api.remove_network(network_id)

    @translate_errors
    def list_containers(
        self, labels: LabelFilter | None = None, include_stopped: bool = True
    ) -> list[ContainerInfo]:
        """List containers with every given label."""
        wanted = label_filters(labels)
        filters = {"label": wanted} if wanted else None
        entries = self._api.containers(all=include_stopped, filters=filters)
        return [container_from_list(entry) for entry in entries]

    @translate_errors
    def create_container(self, spec: ContainerSpec, start: bool = True) -> ContainerInfo:
        """Create (and start) a container; one that cannot start is removed again."""
        created = self._api.create_container(
            spec.image,
            command=spec.command,
            name=spec.name,
            entrypoint=spec.entrypoint,
            environment=dict(spec.env),
            labels=dict(spec.labels),
            user=spec.user,
            working_dir=spec.working_dir,
            ports=[(p.container_port, p.protocol) for p in spec.ports],
            host_config=self._api.create_host_config(**host_config_args(spec)),
        )
        if start:
            try:
                self._api.start(created["Id"])
            except docker.errors.APIError:
                self._api.remove_container(created["Id"], force=True)
                raise
        return self.inspect_container(created["Id"])

    @translate_errors
    def inspect_container(self, container_id: str) -> ContainerInfo:
        """Return one container."""
        return container_from_inspect(self._api.inspect_container(container_id))

    @translate_errors
    def start_container(self, container_id: str) -> None:
        """Start a container."""
        self._api.start(container_id)

    @translate_errors
    def stop_container(self, container_id: str, timeout: int = 10) -> None:
        """Stop a container."""
        self._api.stop(container_id, timeout=timeout)

    @translate_errors
    def restart_container(self, container_id: str, timeout: int = 10) -> None:
        """Restart a container."""
        self._api.restart(container_id, timeout=timeout)

    @translate_errors
    def remove_container(
        self, container_id: str, force: bool = False, volumes: bool = False
    ) -> None:
        """Remove a container."""
        self._api.remove_container(container_id, v=volumes, force=force)

    @translate_errors
    def container_stats(self, container_id: str) -> ContainerStats:
        """Return one resource sample."""
        return stats_from_sample(self._api.stats(container_id, stream=False))

    @translate_errors
    def logs(
        self,
        container_id: str,
        follow: bool = False,
        since: float | None = None,
        tail: int | None = None,
        timestamps: bool = False,
        read_timeout_s: float | None = None,
    ) -> LogStream:
        """Open the log stream now (errors raise here) and return its frames."""
        tty = self.inspect_container(container_id).tty
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "follow": int(follow),
            "timestamps": int(timestamps),
            "tail": "all" if tail is None else tail,
        }
        if since is not None:
            params["since"] = since
        url = self._api._url("/containers/{0}/logs", container_id)
        # the SDK's own logs() merges stdout and stderr; read the frames ourselves to keep both
        timeout = {"timeout": read_timeout_s} if read_timeout_s is not None else {}
        response = self._api._get(url, params=params, stream=True, **timeout)
        self._api._raise_for_status(response)
        return self._log_frames(response, tty, timestamps)

    def _log_frames(self, response: Any, tty: bool, timestamps: bool) -> LogStream:
        raw, pending = response.raw, b""
        try:
            while True:
                if tty:
                    data, stream = raw.read1(65536) if hasattr(raw, "read1") else raw.read(1), 1
                else:
                    header = raw.read(8)
                    if len(header) < 8:
                        return
                    stream, length = struct.unpack(">BxxxL", header)
                    data = raw.read(length)
                if not data:
                    if pending:
                        yield _stamped(pending)
                    return
                if tty and timestamps:
                    # a tty's reads run lines together, each with its own timestamp
                    *lines, pending = (pending + data).split(b"\n")
                    yield from (_stamped(line + b"\n") for line in lines)
                    continue
                text = data.decode(errors="replace")
                stamp = None
                if timestamps:
                    stamp, _, text = text.partition(" ")
                yield LogChunk(_STREAMS.get(stream, "stdout"), text, stamp)  # type: ignore[arg-type]
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            # urllib3's read timeout is none of requests' or OSError's kind: without it, a
            # follower of a container silent for the timeout died with a traceback.
            raise Unavailable(f"local log stream interrupted: {error}") from error
        finally:
            response.close()

    @translate_errors
    def exec_stream(
        self,
        container_id: str,
        argv: list[str],
        user: str | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecStream:
        """Start the exec now (errors raise here) and return its output and exit."""
        created = self._api.exec_create(
            container_id,
            list(argv),
            user=user or "",
            workdir=workdir,
            environment=dict(env) if env else None,
        )
        # exec_start(socket=True) hides the HTTP response, which must be closed with the socket
        response = self._api._post_json(
            self._api._url("/exec/{0}/start", created["Id"]),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": False, "Detach": False},
            stream=True,
        )
        raw = self._api._get_raw_response_socket(response)
        return self._exec_events(created["Id"], raw, response, timeout)

    @translate_errors
    def open_terminal(
        self, container_id: str, argv: list[str], size: TerminalSize, user: str | None = None
    ) -> TerminalSession:
        """Start argv with a TTY and stdin in a running container (errors raise here)."""
        created = self._api.exec_create(
            container_id,
            list(argv),
            stdin=True,
            tty=True,
            user=user or "",
            environment={"TERM": DEFAULT_TERM},
        )
        exec_id = created["Id"]
        response = self._api._post_json(
            self._api._url("/exec/{0}/start", exec_id),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": True, "Detach": False},
            stream=True,
        )
        sock: socket.socket = getattr(
            raw := self._api._get_raw_response_socket(response), "_sock", raw
        )
        session = TerminalSession(
            sock,
            exec_id,
            resize=lambda new: self.resize_terminal(exec_id, new),
            finish=lambda: self._end_terminal(exec_id),
            release=response.close,
        )
        with contextlib.suppress(EngineError):  # a shell that exits at once has no TTY to size
            self.resize_terminal(exec_id, size)
        return session

    @translate_errors
    def resize_terminal(self, exec_id: str, size: TerminalSize) -> None:
        """Docker's exec resize: the TTY's new columns and rows."""
        self._api.exec_resize(exec_id, height=size.rows, width=size.cols)

    @translate_errors
    def _end_terminal(self, exec_id: str) -> int | None:
        self._kill_exec(exec_id)  # nothing when it ended by itself
        return self._exit_code(exec_id)

    def _exec_events(self, exec_id: str, raw: Any, response: Any, timeout: float) -> ExecStream:
        deadline, buffer = time.monotonic() + timeout, b""
        sock: socket.socket = getattr(raw, "_sock", raw)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                    self._kill_exec(exec_id)
                    yield ExecExit(None, timed_out=True)
                    return
                data = sock.recv(65536)
                if not data:
                    break
                buffer += data
                while len(buffer) >= 8:
                    stream, length = struct.unpack(">BxxxL", buffer[:8])
                    if len(buffer) < 8 + length:
                        break
                    text = buffer[8 : 8 + length].decode(errors="replace")
                    buffer = buffer[8 + length :]
                    yield ExecChunk(_STREAMS.get(stream, "stdout"), text)  # type: ignore[arg-type]
        except GeneratorExit:
            self._kill_exec(exec_id)  # the caller stopped reading: nobody wants the rest
            raise
        finally:
            response.close()  # closes the HTTP layers first; the socket last
            sock.close()
        yield ExecExit(self._exit_code(exec_id))

    def _exit_code(self, exec_id: str) -> int | None:
        for _ in range(50):  # the stream may end a moment before the engine records the exit
            state = self._api.exec_inspect(exec_id)
            if not state.get("Running"):
                return state.get("ExitCode")
            time.sleep(0.02)
        return None

    def _kill_exec(self, exec_id: str) -> None:
        """SIGKILL the exec's process group (runc makes the exec its leader; best effort)."""
        # The engine marks an exec running before it records the Pid (0 until then): on a busy
        # host the process can print and lose its reader inside that window, so wait for it.
        deadline = time.monotonic() + EXEC_PID_WAIT_S
        while True:
            state = self._api.exec_inspect(exec_id)
            if not state.get("Running"):
                return  # ended: its old Pid may already belong to another process
            pid = state.get("Pid") or 0
            if pid > 0 or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if pid > 0:
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
