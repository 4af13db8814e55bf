"""Request parsing, routing and response writing for the agent's HTTP API."""

from __future__ import annotations

import json
import re
import select
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote

from agent.errors import ApiError, bad_request

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64  # specs nest a few levels; json's C parser recurses ~1000 deep, then fails
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps(separators=) is not
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# The portal and the proxy accept the same shape, so one id can be followed through every log.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class RawBody:
    """A non-JSON answer body (the metrics exposition, for one)."""

    content_type: str
    data: bytes


@dataclass
class Request:
    """One authenticated API request as handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    raw_body: bytes
    handler: BaseHTTPRequestHandler
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """Return the body as a JSON object; 411 without Content-Length, 400 when malformed."""
        if not self.raw_body and self.handler.headers.get("Content-Length") is None:
            raise ApiError(
                411, "length_required", "this request needs a JSON body with Content-Length"
            )
        document = parse_json(self.raw_body or b"{}")
        if not isinstance(document, dict):
            raise bad_request("request body must be a JSON object")
        return document

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Return the last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Return a boolean query parameter (1/0, true/false, yes/no)."""
        value = self.arg(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise bad_request(f"query parameter {name!r} must be a boolean, got {value!r}")

    def int_arg(self, name: str, default: int | None = None, minimum: int = 0) -> int | None:
        """Return an integer query parameter no smaller than minimum."""
        value = self.arg(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise bad_request(f"query parameter {name!r} must be an integer") from exc
        if number < minimum:
            raise bad_request(f"query parameter {name!r} must be >= {minimum}")
        return number

    def stream(self, content_type: str = "application/x-ndjson") -> StreamWriter:
        """Send 200 headers for a chunked stream and return its writer."""
        return StreamWriter(self.handler, content_type)


class StreamWriter:
    """Write an unbuffered chunked HTTP body, one flush per chunk."""

    def __init__(self, handler: BaseHTTPRequestHandler, content_type: str) -> None:
        self.handler = handler
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("X-Accel-Buffering", "no")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.flush()
        self.closed = False

    def write(self, data: bytes) -> None:
        """Send one chunk now; raises OSError once the client is gone."""
        if data:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()

    def write_json(self, document: dict[str, Any]) -> None:
        """Send one JSON line."""
        self.write(_COMPACT.encode(document).encode() + b"\n")

    def keepalive(self) -> None:
        """Send an empty line so idle streams prove both ends are still there."""
        self.write(b"\n")

    def client_gone(self) -> bool:
        """Tell whether the client closed its side (clients send nothing mid-stream)."""
        readable, _, _ = select.select([self.handler.connection], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        """End the chunked body."""
        if not self.closed:
            self.closed = True
            try:
                self.handler.wfile.write(b"0\r\n\r\n")
                self.handler.wfile.flush()
            except OSError:
                pass


Handler = Callable[[Request], "tuple[int, Any] | None"]


class Router:
    """Map (method, path pattern) to handlers; {name} matches one segment, {name:path} several."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler, frozenset[str]]] = []
        self.patterns: list[tuple[str, str]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register a handler."""
        self.patterns.append((method, pattern))
        multi_segment = frozenset(re.findall(r"\{(\w+):path\}", pattern))
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self._routes.append((method, re.compile(f"^{regex}$"), handler, multi_segment))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """Return the handler and path parameters, or raise 404/405."""
        allowed = []
        for route_method, regex, handler, multi_segment in self._routes:
            match = regex.match(path)
            if match:
                if route_method == method:
                    return handler, _path_params(match.groupdict(), multi_segment)
                allowed.append(route_method)
        if allowed:
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} not allowed on {path}",
                {"allowed": sorted(set(allowed))},
            )
        raise ApiError(404, "not_found", f"no such endpoint: {path}")


def _path_params(raw: dict[str, str], multi_segment: frozenset[str]) -> dict[str, str]:
    """Decode path parameters; refuse what would change the Engine API path they are put in."""
    params = {}
    for name, value in raw.items():
        decoded = unquote(value)
        if _CONTROL.search(decoded):
            raise bad_request(f"path parameter {name!r} holds a control character", field=name)
        if "/" in decoded and name not in multi_segment:  # {name:path}: image references
            raise bad_request(f"path parameter {name!r} must not contain '/'", field=name)
        if any(part in (".", "..") for part in decoded.split("/")):
            raise bad_request(f"path parameter {name!r} must not be '.' or '..'", field=name)
        params[name] = decoded
    return params


def parse_json(raw: bytes) -> Any:
    """Parse a request body, refusing nesting deeper than MAX_JSON_DEPTH with a 400."""
    # Count brackets outside strings: on valid JSON the regex consumes exactly its strings.
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise bad_request(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc


def request_id(offered: str | None) -> str:
    """Return the caller's request id when it is a short plain token, else a new one."""
    if offered and _REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def split_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """Split a request target into its raw path and parsed query."""
    path, _, query = target.partition("?")
    return path, parse_qs(query, keep_blank_values=True)
