"""AgentEngine: the ContainerEngine of a remote host, spoken to through its Spectr agent."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from portal.engines.base import ContainerEngine, LabelFilter, ProgressCallback
from portal.engines.errors import BadRequest, Conflict, EngineError, NotFound, Unavailable
from portal.engines.models import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineHealth,
    ExecChunk,
    ExecExit,
    ImageInfo,
    LogChunk,
    PullProgress,
)
from portal.engines.resilience import CircuitBreaker, RetryPolicy, breaker_for
from portal.engines.shapes import container_info, image_info

_STATUS_ERRORS: dict[int, type[EngineError]] = {
    400: BadRequest,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
}
_STREAM_READ_TIMEOUT_S = 60.0  # the agent sends a keepalive line every 15 s on idle streams


def _tls_context(ca_cert: str | None, client_cert: tuple[str, str] | None) -> ssl.SSLContext:
    """Trust only the Spectr CA (a path or PEM text); present a client certificate if given."""
    if ca_cert and ca_cert.lstrip().startswith("-----BEGIN"):
        context = ssl.create_default_context(cadata=ca_cert)
    else:
        context = ssl.create_default_context(cafile=ca_cert)
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    return context


def _error_from(response: httpx.Response) -> EngineError:
    try:
        body = response.json()
        message, code = str(body.get("message")), str(body.get("code"))
        details = body.get("details") or {}
    except (ValueError, AttributeError):
        message, code, details = response.text[:200] or response.reason_phrase, "", {}
    details = {**details, "agent_status": response.status_code, "agent_code": code}
    if code == "engine_unreachable" or response.status_code == 503:
        return Unavailable(message, details)
    if response.status_code in (401, 403, 429):
        return EngineError(f"agent refused the portal's credentials: {message}", details)
    return _STATUS_ERRORS.get(response.status_code, EngineError)(message, details)


def _is_tls_failure(error: Exception) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _segment(value: str) -> str:
    return quote(value, safe="")


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
        self.host = urlsplit(base_url).netloc
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or breaker_for(self.host)
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._stream_timeout = httpx.Timeout(
            timeout_s, connect=connect_timeout_s, read=_STREAM_READ_TIMEOUT_S
        )
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            verify=_tls_context(ca_cert, client_cert),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "spectr-portal"},
            timeout=self._timeout,
        )

    def __repr__(self) -> str:
        return f"AgentEngine({self.host!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    # -- transport -------------------------------------------------------------------------

    def _send(
        self, request: httpx.Request, *, idempotent: bool = True, stream: bool = False
    ) -> httpx.Response:
        """Send with retries: connection failures always, timeouts and 5xx only if idempotent."""
        failure: Exception | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                time.sleep(self.retry.delay(attempt - 1))
            self.breaker.before_call(self.host)
            try:
                response = self._client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if _is_tls_failure(error):
                    raise Unavailable(
                        f"TLS with {self.host} failed: {error}", {"host": self.host}
                    ) from error
                self.breaker.record_failure()
                failure = error
                continue
            except httpx.TransportError as error:
                self.breaker.record_failure()
                failure = error
                if not idempotent:
                    break
                continue
            self.breaker.record_success()
            if response.status_code < 500 or not idempotent:
                return response
            if attempt == self.retry.attempts - 1:
                return response
            response.close()
            failure = _error_from(response) if not stream else EngineError("agent 5xx")
        raise Unavailable(
            f"agent at {self.host} unreachable: {failure}", {"host": self.host}
        ) from failure

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        timeout: httpx.Timeout | None = None,
        **kwargs: Any,
    ) -> Any:
        """Make one JSON call and return the decoded answer, or raise a mapped error."""
        request = self._client.build_request(
            method, path, timeout=timeout or self._timeout, **kwargs
        )
        response = self._send(request, idempotent=idempotent)
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else None

    def _open_stream(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """Open a JSON-lines stream; errors before the first byte raise here, not later."""
        request = self._client.build_request(method, path, timeout=self._stream_timeout, **kwargs)
        response = self._send(request, idempotent=idempotent, stream=True)
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _error_from(response)
        return response

    def _lines(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        """Yield JSON lines, skipping keepalives; a broken stream raises Unavailable."""
        buffer = b""
        try:
            # split bytes ourselves: httpx's iter_lines decodes text first and halves throughput
            for data in response.iter_bytes():
                *lines, buffer = (buffer + data).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as error:
            raise Unavailable(
                f"stream from {self.host} interrupted: {error}", {"host": self.host}
            ) from error
        finally:
            response.close()

    # -- contract --------------------------------------------------------------------------

    def health(self) -> EngineHealth:
        """Report agent and engine reachability; never raises."""
        try:
            body = self._call("GET", "/v1/health")
        except EngineError as error:
            return EngineHealth(reachable=False, error=error.message)
        engine = body.get("engine") or {}
        return EngineHealth(
            reachable=bool(engine.get("reachable")),
            engine_version=engine.get("version"),
            agent_version=body.get("agent_version"),
            error=engine.get("error"),
        )

    def facts(self) -> dict[str, Any]:
        """Return the agent's host facts."""
        return self._call("GET", "/v1/facts", timeout=httpx.Timeout(30.0, connect=3.0))

    def list_images(self) -> list[ImageInfo]:
        """List local images of the host."""
        return [image_info(item) for item in self._call("GET", "/v1/images")]

    def inspect_image(self, reference: str) -> ImageInfo:
        """Return one image."""
        return image_info(self._call("GET", f"/v1/images/{_segment(reference)}"))

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
        response = self._open_stream("POST", "/v1/images/pull", json=body)
        for event in self._lines(response):
            if "error" in event:
                error = event["error"]
                raise _error_for_code(error.get("code"), error.get("message", "pull failed"))
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

    def remove_image(self, reference: str, force: bool = False) -> None:
        """Remove an image."""
        params = {"force": int(force)}
        self._call("DELETE", f"/v1/images/{_segment(reference)}", params=params)

    def list_containers(
        self, labels: LabelFilter | None = None, include_stopped: bool = True
    ) -> list[ContainerInfo]:
        """List containers with every given label."""
        params: list[tuple[str, str | int]] = [("all", int(include_stopped))]
        for key, value in (labels or {}).items():
            params.append(("label", key if value is None else f"{key}={value}"))
        return [container_info(item) for item in self._call("GET", "/v1/containers", params=params)]

    def create_container(self, spec: ContainerSpec, start: bool = True) -> ContainerInfo:
        """Create (and start) a container; a retry after a lost answer may meet 409."""
        body = {**spec.to_agent_body(), "start": start}
        created = self._call(
            "POST",
            "/v1/containers",
            json=body,
            idempotent=False,
            timeout=httpx.Timeout(60.0, connect=3.0),
        )
        return self.inspect_container(created["id"])

    def inspect_container(self, container_id: str) -> ContainerInfo:
        """Return one container."""
        return container_info(self._call("GET", f"/v1/containers/{_segment(container_id)}"))

    def start_container(self, container_id: str) -> None:
        """Start a container."""
        self._call(
            "POST",
            f"/v1/containers/{_segment(container_id)}/start",
            timeout=httpx.Timeout(60.0, connect=3.0),
        )

    def _stop_or_restart(self, action: str, container_id: str, timeout: int) -> None:
        self._call(
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
        self._call("DELETE", f"/v1/containers/{_segment(container_id)}", params=params)

    def container_stats(self, container_id: str) -> ContainerStats:
        """Return one resource sample."""
        body = self._call(
            "GET",
            f"/v1/containers/{_segment(container_id)}/stats",
            timeout=httpx.Timeout(30.0, connect=3.0),
        )
        return ContainerStats(
            body["cpu_percent"],
            body.get("memory_usage_bytes"),
            body.get("memory_limit_bytes"),
            body.get("pids"),
        )

    def logs(
        self,
        container_id: str,
        follow: bool = False,
        since: float | None = None,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[LogChunk]:
        """Open the log stream now (errors raise here) and return its frames."""
        params: dict[str, Any] = {"follow": int(follow), "timestamps": int(timestamps)}
        if since is not None:
            params["since"] = since
        if tail is not None:
            params["tail"] = tail
        path = f"/v1/containers/{_segment(container_id)}/logs"
        response = self._open_stream("GET", path, params=params)
        return (LogChunk(e["stream"], e["data"], e.get("ts")) for e in self._lines(response))

    def exec_stream(
        self,
        container_id: str,
        argv: list[str],
        user: str | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Iterator[ExecChunk | ExecExit]:
        """Start the exec now (errors raise here) and return its output and exit."""
        body: dict[str, Any] = {"argv": list(argv), "timeout_s": timeout}
        if user is not None:
            body["user"] = user
        if workdir is not None:
            body["workdir"] = workdir
        if env is not None:
            body["env"] = dict(env)
        path = f"/v1/containers/{_segment(container_id)}/exec"
        response = self._open_stream("POST", path, json=body, idempotent=False)
        return self._exec_events(response)

    def _exec_events(self, response: httpx.Response) -> Iterator[ExecChunk | ExecExit]:
        for event in self._lines(response):
            if "exit_code" in event:
                yield ExecExit(event["exit_code"], bool(event.get("timed_out")))
                return
            yield ExecChunk(event["stream"], event["data"])
        raise Unavailable(f"exec stream from {self.host} ended without an exit code")


def _error_for_code(code: str | None, message: str) -> EngineError:
    by_code: dict[str | None, type[EngineError]] = {
        "not_found": NotFound,
        "conflict": Conflict,
        "engine_rejected": BadRequest,
        "engine_unreachable": Unavailable,
    }
    return by_code.get(code, EngineError)(message, {"agent_code": code})
