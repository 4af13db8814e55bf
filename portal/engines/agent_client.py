"""AgentEngine: the ContainerEngine of a remote host, spoken to through its Spectr agent."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from portal.engines.agent_transport import AgentTransport
from portal.engines.base import (
    ContainerEngine,
    ExecStream,
    LabelFilter,
    LogStream,
    ModelEventCallback,
    ProgressCallback,
)
from portal.engines.contracts import agent_contract_problem
from portal.engines.errors import EngineError, Incompatible, Unavailable
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
from portal.engines.resilience import CircuitBreaker, RetryPolicy
from portal.engines.shapes import (
    container_info,
    image_info,
    network_info,
    prune_result,
    volume_info,
)
from portal.engines.terminal import TerminalSession, TerminalSize

_PULL_READ_TIMEOUT_S = 660.0
# Disk usage and prunes walk every volume or image: slower than an ordinary call on a big host.
_SLOW_CALL = httpx.Timeout(150.0, connect=3.0)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _label_params(labels: LabelFilter | None) -> list[tuple[str, str]]:
    return [("label", k if v is None else f"{k}={v}") for k, v in (labels or {}).items()]


class AgentEngine(ContainerEngine):
    """Call one host's agent over HTTPS with a bearer token, retries and a circuit breaker."""

    def __init__(
        self,
        base_url: str,
        token: str,
        ca_cert: str | None = None,
        *,
        client_cert: tuple[str, str] | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._transport = AgentTransport(
            base_url,
            token,
            ca_cert,
            client_cert=client_cert,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retry=retry,
            breaker=breaker,
        )
        self.host = self._transport.host
        self.breaker = self._transport.breaker

    def __repr__(self) -> str:
        return f"AgentEngine({self.host!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

    def health(self) -> EngineHealth:
        """Report agent and engine reachability; never raises."""
        try:
            body = self._transport.call("GET", "/v1/health")
        except Incompatible as error:
            return EngineHealth(False, error=error.message, contract_problem=error.message)
        except EngineError as error:
            return EngineHealth(reachable=False, error=error.message)
        problem = agent_contract_problem(body.get("contract"))
        if problem:
            return EngineHealth(False, agent_version=body.get("agent_version"), error=problem,
                                contract_problem=problem)  # fmt: skip
        engine = body.get("engine") or {}
        return EngineHealth(
            reachable=bool(engine.get("reachable")),
            engine_version=engine.get("version"),
            agent_version=body.get("agent_version"),
            error=engine.get("error"),
        )

    def facts(self) -> dict[str, Any]:
        """Return the agent's host facts."""
        return self._transport.call("GET", "/v1/facts", timeout=httpx.Timeout(30.0, connect=3.0))

    def list_images(self) -> list[ImageInfo]:
        """List local images of the host."""
        return [image_info(item) for item in self._transport.call("GET", "/v1/images")]

    def inspect_image(self, reference: str) -> ImageInfo:
        """Return one image."""
        return image_info(self._transport.call("GET", f"/v1/images/{_segment(reference)}"))

    def pull_image(
        self,
        reference: str,
        auth: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ImageInfo:
        """Pull through the agent, passing progress events on; raise on a pull error."""
        body: dict[str, Any] = {"image": reference}
        if auth:
            body["auth"] = dict(auth)
        # pulls carry no keepalives: allow the agent's own limit on engine silence
        response = self._transport.open_stream(
            "POST", "/v1/images/pull", json=body, read_timeout_s=_PULL_READ_TIMEOUT_S
        )
        for event in self._transport.lines(response):
            if event.get("status") == "done":
                return image_info(event["image"])
            if progress is not None:
                progress(
                    PullProgress(
                        str(event.get("status") or ""),
                        event.get("id"),
                        event.get("current"),
                        event.get("total"),
                    )
                )
        raise Unavailable(f"pull stream from {self.host} ended without a result")

    def model_cache(self) -> dict[str, Any]:
        """The agent's model cache: root, free bytes and the complete models."""
        return self._transport.call("GET", "/v1/models")

    def pull_model(self, spec: dict[str, Any], on_event: ModelEventCallback) -> dict[str, Any]:
        """Have the agent fetch a model from the registry, passing its events on."""
        response = self._transport.open_stream(
            "POST", "/v1/models/pull", json=spec, read_timeout_s=_PULL_READ_TIMEOUT_S
        )
        for event in self._transport.lines(response):
            on_event(event)
            if event.get("event") == "done":
                return event
            if event.get("event") == "error":
                raise EngineError(f"{self.host}: {event.get('message')}")
        raise Unavailable(f"model pull stream from {self.host} ended without a result")

    def remove_model(self, digest: str) -> int:
        """Delete a model from the agent's cache; return the bytes freed."""
        body = self._transport.call("DELETE", f"/v1/models/{_segment(digest)}")
        return int(body.get("freed_bytes") or 0)

    def remove_image(self, reference: str, force: bool = False) -> None:
        """Remove an image."""
        params = {"force": int(force)}
        self._transport.call("DELETE", f"/v1/images/{_segment(reference)}", params=params)

    def _prune(self, kind: str, labels: LabelFilter | None) -> PruneResult:
        answer = self._transport.call(
            "POST",
            f"/v1/{kind}/prune",
            params=_label_params(labels),
            idempotent=False,
            timeout=_SLOW_CALL,
        )
        return prune_result(answer)

    def prune_images(self, labels: LabelFilter | None = None) -> PruneResult:
        """Remove dangling images with every given label."""
        return self._prune("images", labels)

    def list_volumes(self) -> list[VolumeInfo]:
        """List volumes with their sizes."""
        listed = self._transport.call("GET", "/v1/volumes", timeout=_SLOW_CALL)
        return [volume_info(item) for item in listed]

    def remove_volume(self, name: str, force: bool = False) -> None:
        """Remove a volume."""
        params = {"force": int(force)}
        self._transport.call("DELETE", f"/v1/volumes/{_segment(name)}", params=params)

    def prune_volumes(self, labels: LabelFilter | None = None) -> PruneResult:
        """Remove unused volumes, named ones too, with every given label."""
        return self._prune("volumes", labels)

    def list_networks(self) -> list[NetworkInfo]:
        """List networks."""
        return [network_info(item) for item in self._transport.call("GET", "/v1/networks")]

    def remove_network(self, network_id: str) -> None:
        """Remove a network."""
        self._transport.call("DELETE", f"/v1/networks/{_segment(network_id)}")

    def list_containers(
        self, labels: LabelFilter | None = None, include_stopped: bool = True
    ) -> list[ContainerInfo]:
        """List containers with every given label."""
        params: list[tuple[str, str | int]] = [("all", int(include_stopped))]
        params += _label_params(labels)
        return [
            container_info(item)
            for item in self._transport.call("GET", "/v1/containers", params=params)
        ]

    def create_container(self, spec: ContainerSpec, start: bool = True) -> ContainerInfo:
        """Create (and start) a container; a retry after a lost answer may meet 409."""
        body = {**spec.to_agent_body(), "start": start}
        created = self._transport.call(
            "POST",
            "/v1/containers",
            json=body,
            idempotent=False,
            timeout=httpx.Timeout(60.0, connect=3.0),
        )
        return self.inspect_container(created["id"])

    def inspect_container(self, container_id: str) -> ContainerInfo:
        """Return one container."""
        return container_info(
            self._transport.call("GET", f"/v1/containers/{_segment(container_id)}")
        )

    def start_container(self, container_id: str) -> None:
        """Start a container."""
        self._transport.call(
            "POST",
            f"/v1/containers/{_segment(container_id)}/start",
            timeout=httpx.Timeout(60.0, connect=3.0),
        )

    def _stop_or_restart(self, action: str, container_id: str, timeout: int) -> None:
        self._transport.call(
            "POST",
            f"/v1/containers/{_segment(container_id)}/{action}",
            params={"timeout": timeout},
            timeout=httpx.Timeout(timeout + 60.0, connect=3.0),
        )

    def stop_container(self, container_id: str, timeout: int = 10) -> None:
        """Stop a container."""
        self._stop_or_restart("stop", container_id, timeout)

    def restart_container(self, container_id: str, timeout: int = 10) -> None:
        """Restart a container."""
        self._stop_or_restart("restart", container_id, timeout)

    def remove_container(
        self, container_id: str, force: bool = False, volumes: bool = False
    ) -> None:
        """Remove a container."""
        params = {"force": int(force), "volumes": int(volumes)}
        self._transport.call("DELETE", f"/v1/containers/{_segment(container_id)}", params=params)

    def container_stats(self, container_id: str) -> ContainerStats:
        """Return one resource sample."""
        body = self._transport.call(
            "GET",
            f"/v1/containers/{_segment(container_id)}/stats",
            timeout=httpx.Timeout(30.0, connect=3.0),
        )
        return ContainerStats(
            body["cpu_percent"],
            body.get("memory_usage_bytes"),
            body.get("memory_limit_bytes"),
            body.get("pids"),
            body.get("network_rx_bytes"),
            body.get("network_tx_bytes"),
        )

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
        params: dict[str, Any] = {"follow": int(follow), "timestamps": int(timestamps)}
        if since is not None:
            params["since"] = since
        if tail is not None:
            params["tail"] = tail
        path = f"/v1/containers/{_segment(container_id)}/logs"
        response = self._transport.open_stream(
            "GET", path, params=params, read_timeout_s=read_timeout_s
        )
        return (
            LogChunk(e["stream"], e["data"], e.get("ts")) for e in self._transport.lines(response)
        )

    def open_terminal(
        self, container_id: str, argv: list[str], size: TerminalSize, user: str | None = None
    ) -> TerminalSession:
        """Start argv with a TTY and stdin through the agent's upgraded connection."""
        body: dict[str, Any] = {"argv": list(argv), "cols": size.cols, "rows": size.rows}
        if user:
            body["user"] = user
        path = f"/v1/containers/{_segment(container_id)}/terminal"
        sock, headers, first = self._transport.upgrade(path, body)
        exec_id = headers.get("x-exec-id", "")
        return TerminalSession(
            sock,
            exec_id,
            resize=lambda new: self._transport.call(
                "POST",
                f"/v1/exec/{_segment(exec_id)}/resize",
                json={"cols": new.cols, "rows": new.rows},
            ),
            finish=lambda: self._terminal_exit(exec_id),
            pending=first,
        )

    def _terminal_exit(self, exec_id: str) -> int | None:
        # The agent kills the exec when the connection closes; its end is recorded a moment later.
        for _ in range(50):
            state = self._transport.call("GET", f"/v1/exec/{_segment(exec_id)}")
            if not state.get("running"):
                return state.get("exit_code")
            time.sleep(0.05)
        return None

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
        body: dict[str, Any] = {"argv": list(argv), "timeout_s": timeout}
        if user is not None:
            body["user"] = user
        if workdir is not None:
            body["workdir"] = workdir
        if env is not None:
            body["env"] = dict(env)
        path = f"/v1/containers/{_segment(container_id)}/exec"
        response = self._transport.open_stream("POST", path, json=body, idempotent=False)
        return self._exec_events(response)

    def _exec_events(self, response: httpx.Response) -> ExecStream:
        for event in self._transport.lines(response):
            if "exit_code" in event:
                yield ExecExit(event["exit_code"], bool(event.get("timed_out")))
                return
            yield ExecChunk(event["stream"], event["data"])
        raise Unavailable(f"exec stream from {self.host} ended without an exit code")
