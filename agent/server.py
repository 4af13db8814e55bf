"""TLS-only threaded HTTP server: authentication, error boundary, connection limits."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent import CONTRACT, __version__
from agent.auth import FailureBackoff, TokenVerifier
from agent.config import RELOADABLE, AgentConfig
from agent.connections import ConnectionTracker, Slot
from agent.docker_api import DockerAPI, DockerError
from agent.errors import ApiError, bad_request, from_docker
from agent.web import MAX_BODY_BYTES, RawBody, Request, Router, request_id, split_target

log = logging.getLogger("spectr_agent")
_LENGTH = re.compile(r"[0-9]{1,19}")
MAX_HEAD_BYTES = 64 * 1024  # http.client alone allows 100 header lines of 64 KiB each
_DISCARD_S = 1.0  # how long an error answer waits for the rest of a body it will not use


class AgentApp:
    """Everything a request needs: the Docker client (created once), auth state and routes."""

    def __init__(self, config: AgentConfig, docker: DockerAPI | None = None) -> None:
        from agent.routes import build_router  # routes import this module's types

        self.config = config
        self.docker = docker or DockerAPI(config.docker_socket)
        self.use_tokens(config)
        self.backoff = FailureBackoff()
        self.router: Router = build_router(self)

    def use_tokens(self, config: AgentConfig) -> None:
        """Accept the tokens `config` names from the next request on."""
        self.verifier = TokenVerifier(config.token_sha256, config.previous_token_sha256 or "")
        self.metrics_verifier = (
            TokenVerifier(config.metrics_token_sha256) if config.metrics_token_sha256 else None
        )


def build_ssl_context(config: AgentConfig) -> ssl.SSLContext:
    """Return a server context: TLS 1.2+, client certificates required when client_ca is set."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if config.client_ca:
        context.load_verify_locations(cafile=config.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class HeadTooLarge(http.client.HTTPException):
    """The request line and headers together exceed MAX_HEAD_BYTES."""


class _HeadReader:
    """The connection's reader while a request head arrives: MAX_HEAD_BYTES in all, not per line."""

    def __init__(self, raw: Any, budget: int) -> None:
        self.raw = raw
        self.left = budget

    def readline(self, size: int = -1) -> bytes:
        """Read one line within what is left of the budget."""
        if self.left <= 0:
            raise HeadTooLarge(f"request head over {MAX_HEAD_BYTES} bytes")
        line = self.raw.readline(self.left if size < 0 else min(size, self.left))
        self.left -= len(line)
        return line  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class AgentRequestHandler(BaseHTTPRequestHandler):
    """Authenticate, route and answer one request; errors leave as one JSON shape."""

    server: AgentServer
    protocol_version = "HTTP/1.1"
    server_version = f"spectr-agent/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True  # otherwise small answers wait ~40 ms on delayed ACKs
    timeout = 120
    request_id = ""
    _body_unread = False
    slot: Slot

    def setup(self) -> None:
        """Find this connection's slot, then set up the socket's reader and writer."""
        self.slot = self.server.current_slot()
        super().setup()

    def handle_one_request(self) -> None:
        """Read one request head under a deadline and a size budget, then serve it."""
        if not self.server.tracker.waiting(self.slot):
            self.close_connection = True
            return
        self._raw_rfile = self.rfile
        self.rfile = _HeadReader(self.rfile, MAX_HEAD_BYTES)  # type: ignore[assignment]
        try:
            super().handle_one_request()
        finally:
            self.rfile = self._raw_rfile

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def __getattr__(self, name: str) -> Any:
        """Any other method (PATCH, TRACE, QUERY...) reaches the router too, which answers 405
        with Allow: http.server's 501 would say the agent cannot do HTTP, not "not here"."""
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        self.rfile = self._raw_rfile  # the head is complete: the body is not part of its budget
        if not self.server.tracker.busy(self.slot):  # completed after its deadline or eviction
            self.close_connection = True
            return
        app = self.server.app
        client = self.client_address[0]
        # One id per request (a kept-alive connection serves several): the caller's or a new one.
        self.request_id = request_id(self.headers.get("X-Request-Id"))
        self._body_unread = self._announces_body()
        try:
            # The head alone authenticates: nothing of an unauthenticated body is ever read.
            self._authenticate(app, client)
            body = self._read_body()
            path, query = split_target(self.path)
            handler, params = app.router.resolve(self.command, path)
            request = Request(self.command, path, query, body, self, params)
            result = handler(request)
        except ApiError as error:
            self.send_json(error.status, error.body(), error)
            result = None
        except DockerError as error:
            mapped = from_docker(error)
            self.send_json(mapped.status, mapped.body(), mapped)
            result = None
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            log.exception("unhandled error on %s %s", self.command, self.path.split("?")[0])
            failure = ApiError(500, "internal_error", "the agent failed; see its log")
            self.send_json(500, failure.body(), failure)
            result = None
        if result is not None:
            status, document = result
            self.send_json(status, document)
        if self._body_unread:
            self._discard_unread_body()

    def _announces_body(self) -> bool:
        length = self.headers.get("Content-Length")
        return self.headers.get("Transfer-Encoding") is not None or (length or "0").strip() != "0"

    def _read_body(self) -> bytes:
        """Read the body the head announced: by Content-Length only, at most MAX_BODY_BYTES."""
        if self.headers.get("Transfer-Encoding") is not None:
            message = "send the body with Content-Length; chunked bodies are not accepted"
            raise ApiError(411, "length_required", message)
        values = {value.strip() for value in self.headers.get_all("Content-Length", [])}
        if not values:
            return b""
        text = values.pop()
        if values or not _LENGTH.fullmatch(text):
            raise bad_request("Content-Length must be one non-negative integer")
        length = int(text)
        if length > MAX_BODY_BYTES:
            message = f"request body over {MAX_BODY_BYTES} bytes (Content-Length {length})"
            raise ApiError(413, "too_large", message)
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("the client left before sending its whole body")
        self._body_unread = False
        return body

    def handle_expect_100(self) -> bool:
        """Send no 100 Continue before authentication; _read_body sends it once it may."""
        return True

    def _discard_unread_body(self) -> None:
        """Drop what the client still sends (bounded), then close: it can read the answer."""
        # Closing with unread bytes makes the kernel answer with a reset, which can destroy the
        # answer before a client still busy sending its body reads it.
        self.close_connection = True
        deadline, left = time.monotonic() + _DISCARD_S, MAX_BODY_BYTES
        with contextlib.suppress(OSError):
            self.connection.settimeout(_DISCARD_S)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 64 * 1024))
                if not chunk:
                    break
                left -= len(chunk)

    def _authenticate(self, app: AgentApp, client: str) -> None:
        wait = app.backoff.retry_after(client)
        if wait > 0:
            self.close_connection = True
            raise ApiError(
                429,
                "too_many_failures",
                "too many failed authentications; wait",
                {"retry_after_s": round(wait, 1)},
            )
        if not self._authorized(app, self.headers.get("Authorization")):
            self.close_connection = True  # an unauthenticated connection gets one answer
            app.backoff.record_failure(client)
            log.warning("refused unauthenticated request from %s", client)
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
        app.backoff.record_success(client)
        self.server.tracker.authenticated(self.slot)

    def _authorized(self, app: AgentApp, authorization: str | None) -> bool:
        if app.verifier.verify(authorization):
            return True
        # The fleet-wide scrape token opens GET /metrics and nothing else.
        is_scrape = self.command == "GET" and self.path.split("?", 1)[0] == "/metrics"
        return (
            is_scrape
            and app.metrics_verifier is not None
            and app.metrics_verifier.verify(authorization)
        )

    def send_json(self, status: int, document: Any, error: ApiError | None = None) -> None:
        """Send a complete answer: JSON, a RawBody, or nothing for 204."""
        content_type = "application/json"
        if isinstance(document, RawBody):
            content_type, payload = document.content_type, document.data
        else:
            payload = b"" if status == 204 else json.dumps(document).encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="spectr-agent"')
        if error is not None and error.status == 405 and "allowed" in error.details:
            self.send_header("Allow", ", ".join(error.details["allowed"]))
        if error is not None and "retry_after_s" in error.details:
            self.send_header("Retry-After", str(int(error.details["retry_after_s"]) + 1))
        if self.close_connection or self._body_unread:
            self.send_header("Connection", "close")  # so the client opens a new one to go on
        if payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has the headers of a GET, never its body
            self.wfile.write(payload)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Start an answer (JSON or stream); every answer carries the request id and the
        contract version, so a client can refuse an agent it does not speak on any call."""
        super().send_response(code, message)
        self.send_header("X-Request-Id", self.request_id)
        self.send_header("Spectr-Agent-Contract", CONTRACT)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer malformed HTTP in the API's JSON error shape, not HTML."""
        self.close_connection = True
        self.request_id = request_id(None)
        error = ApiError(code, "bad_http", message or "malformed request")
        with contextlib.suppress(OSError):
            self.send_json(code, error.body())

    def log_message(self, format: str, *args: Any) -> None:
        """Log without query strings or headers: nothing secret reaches the log."""
        log.debug("%s %s", self.client_address[0], format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log method, path, status and request id of each request."""
        path = getattr(self, "path", "").split("?")[0]
        client = self.client_address[0]
        log.info("%s %s %s %s request_id=%s", client, self.command, path, code, self.request_id)


class AgentServer(ThreadingHTTPServer):
    """HTTPS server: a thread per connection, TLS handshake in it, slots with deadlines."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: AgentApp) -> None:
        self.app = app
        config = app.config
        self.ssl_context = build_ssl_context(config)
        self.tracker = ConnectionTracker(
            config.max_connections, config.max_unauthenticated_per_client,
            config.tls_handshake_timeout_s, config.request_head_timeout_s,
            AgentRequestHandler.timeout,
        )  # fmt: skip
        self._current = threading.local()  # the slot of the connection this thread serves
        host = config.listen_host
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, int(config.listen_port)), AgentRequestHandler)
        threading.Thread(target=self.tracker.reap_forever, name="reaper", daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Give the connection a slot and a thread, or close it when it gets no slot."""
        slot = self.tracker.admit(request, client_address[0])
        if slot is None:
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve, args=(request, client_address, slot), daemon=True
        )
        thread.start()

    def _serve(self, request: Any, client_address: Any, slot: Slot) -> None:
        self._current.slot = slot
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.tracker.release(slot)
            self.shutdown_request(request)

    def current_slot(self) -> Slot:
        """Return the slot of the connection the calling thread serves."""
        return self._current.slot  # type: ignore[no-any-return]

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Do the TLS handshake here, off the accept loop, then serve the connection."""
        request.settimeout(self.app.config.tls_handshake_timeout_s)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        except OSError as exc:  # the reaper or an eviction closed it, or the client left
            log.debug("connection from %s ended: %s", client_address[0], exc)
        finally:
            tls.close()

    def reload(self, config: AgentConfig) -> list[str]:
        """Apply new credentials to connections from now on; return settings that need a restart.

        Connections already open keep their TLS session and finish normally: a reload never
        drops service. A certificate or key that does not load raises before anything changes.
        """
        context = build_ssl_context(config)
        current = self.app.config
        for name in RELOADABLE:
            setattr(current, name, getattr(config, name))
        self.ssl_context = context  # read once per new connection in finish_request
        self.app.use_tokens(current)
        logging.getLogger().setLevel(current.log_level.upper())
        return [
            f.name for f in fields(AgentConfig)
            if f.name not in RELOADABLE and getattr(config, f.name) != getattr(current, f.name)
        ]  # fmt: skip

    def server_close(self) -> None:
        """Stop the reaper and close the listening socket."""
        self.tracker.stop()
        super().server_close()
