"""HTTPS transport to one agent: TLS trust, bearer token, retries, breaker, error mapping."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from portal.core.logging import current_request_id
from portal.engines.contracts import AGENT_CONTRACT_HEADER, agent_contract_problem
from portal.engines.errors import (
    BadRequest,
    Conflict,
    EngineError,
    Incompatible,
    NotFound,
    Unavailable,
)
from portal.engines.resilience import CircuitBreaker, RetryPolicy, breaker_for

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


def _read_answer_head(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece or len(data) > 65536:
            raise Unavailable("the agent closed the connection before answering")
        data += piece
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}, rest


def _read_body(sock: ssl.SSLSocket, headers: dict[str, str], body: bytes) -> bytes:
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        piece = sock.recv(length - len(body))
        if not piece:
            break
        body += piece
    return body


def _is_tls_failure(error: Exception) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def error_for_code(code: str | None, message: str) -> EngineError:
    """Map the code of an error line inside a stream to the exception tree."""
    by_code: dict[str | None, type[EngineError]] = {
        "not_found": NotFound,
        "conflict": Conflict,
        "engine_rejected": BadRequest,
        "engine_unreachable": Unavailable,
    }
    return by_code.get(code, EngineError)(message, {"agent_code": code})


def _event(line: bytes) -> dict[str, Any]:
    """Decode one stream line; an {"error": ...} line (the agent's last) raises."""
    event = json.loads(line)
    if "error" in event:
        error = event["error"] or {}
        raise error_for_code(error.get("code"), error.get("message") or "agent stream failed")
    return event


class AgentTransport:
    """Send requests to one agent; retry what is transient and fail fast on a dead host."""

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
        self._base, self._token = urlsplit(base_url), token
        self._connect_timeout_s = connect_timeout_s
        self._context = _tls_context(ca_cert, client_cert)
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            verify=self._context,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "spectr-portal"},
            timeout=self._timeout,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def upgrade(
        self, path: str, body: dict[str, Any]
    ) -> tuple[ssl.SSLSocket, dict[str, str], bytes]:
        """POST with `Upgrade: tcp` on a connection of its own (mutual TLS, the token); on the
        agent's 101 return the socket, the answer's headers and any bytes read past them."""
        host, port = self._base.hostname or "", self._base.port or 443
        try:
            raw = socket.create_connection((host, port), timeout=self._connect_timeout_s)
            tls = self._context.wrap_socket(raw, server_hostname=host)
        except OSError as exc:
            raise Unavailable(f"agent {self.host} unreachable: {exc}") from exc
        payload = json.dumps(body).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}",
                f"Authorization: Bearer {self._token}", "User-Agent: spectr-portal",
                "Connection: Upgrade", "Upgrade: tcp", "Content-Type: application/json",
                f"Content-Length: {len(payload)}"]  # fmt: skip
        if request_id := current_request_id():
            head.append(f"X-Request-Id: {request_id}")
        try:
            tls.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            status, headers, rest = _read_answer_head(tls)
            if status != 101:
                answer = httpx.Response(
                    status, headers=headers, content=_read_body(tls, headers, rest)
                )
                raise _error_from(answer)
        except OSError as exc:  # with TLS 1.3 a refused client certificate shows up here
            tls.close()
            raise Unavailable(f"agent {self.host} closed the connection: {exc}") from exc
        except BaseException:
            tls.close()
            raise
        tls.settimeout(None)  # from here on the caller waits with select()
        return tls, headers, rest

    def send(
        self, request: httpx.Request, *, idempotent: bool = True, stream: bool = False
    ) -> httpx.Response:
        """Send with retries: connection failures always, timeouts and 5xx only if idempotent."""
        request_id = current_request_id()
        if request_id:
            # The agent logs it and echoes it: one id from the portal's request to the host.
            request.headers["X-Request-Id"] = request_id
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
            _refuse_incompatible(response, self.host)
            if response.status_code < 500 or not idempotent:
                return response
            if attempt == self.retry.attempts - 1:
                return response
            response.close()
            failure = _error_from(response) if not stream else EngineError("agent 5xx")
        raise Unavailable(
            f"agent at {self.host} unreachable: {failure}", {"host": self.host}
        ) from failure

    def call(
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
        response = self.send(request, idempotent=idempotent)
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else None

    def open_stream(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        read_timeout_s: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Open a JSON-lines stream; errors before the first byte raise here, not later."""
        timeout = self._stream_timeout
        if read_timeout_s is not None:
            base = self._timeout
            timeout = httpx.Timeout(
                connect=base.connect, read=read_timeout_s, write=base.write, pool=base.pool
            )
        request = self._client.build_request(method, path, timeout=timeout, **kwargs)
        response = self.send(request, idempotent=idempotent, stream=True)
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _error_from(response)
        return response

    def lines(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        """Yield JSON lines, skipping keepalives; a broken stream raises Unavailable."""
        buffer = b""
        try:
            # split bytes ourselves: httpx's iter_lines decodes text first and halves throughput
            for data in response.iter_bytes():
                *lines, buffer = (buffer + data).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _event(line)
        except httpx.TransportError as error:
            raise Unavailable(
                f"stream from {self.host} interrupted: {error}", {"host": self.host}
            ) from error
        finally:
            response.close()


def _refuse_incompatible(response: httpx.Response, host: str) -> None:
    """Refuse every answer of an agent whose contract major this portal does not speak."""
    problem = agent_contract_problem(response.headers.get(AGENT_CONTRACT_HEADER))
    if problem:
        response.close()
        raise Incompatible(problem, {"host": host})
