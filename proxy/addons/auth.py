"""Gateway key authentication: Bearer secret -> SHA-256 -> key in the config.

The key is checked on the request's head, before its body is read: a client without a valid
key cannot make the proxy read (and hold) a body, and no body is read past `max_body_bytes`.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime

from mitmproxy import http

from proxy.config import GatewayKey, ProxyConfig
from proxy.errors import error_response
from proxy.state import GATEWAY, GatewayRequest, ProxyState, is_gateway_request

AUTHORIZATION = b"authorization"
DEFAULT_MAX_BODY_MB = 100
# On mitmproxy's path (TLS, handed-over connections) a body is read before the `request` hook
# can answer: an unauthenticated request is let through to its 401 only with a body this small.
UNAUTHENTICATED_BODY_MAX = 64 * 1024


class BodyVerdict(enum.Enum):
    """What to do with a gateway request's body, decided on its head."""

    READ = "read"
    UNAUTHENTICATED = "unauthenticated"  # answer 401 without reading it
    TOO_LARGE = "too_large"  # answer 413 without reading it


def valid_key(config: ProxyConfig, authorization: str) -> GatewayKey | None:
    """The unexpired key an `Authorization` header's Bearer secret names, or None."""
    secret = bearer_token(authorization)
    if not secret:
        return None
    key = config.keys_by_hash.get(hashlib.sha256(secret.encode()).hexdigest())
    return None if key is None or key.expired(datetime.now(UTC)) else key


def too_large_response(limit_bytes: int) -> http.Response:
    """413 in OpenAI's error shape, naming the limit."""
    return error_response(
        413,
        f"Request body too large: the gateway accepts at most {limit_bytes // (1024 * 1024)} MiB.",
        "request_too_large",
    )


class GatewayAuth:
    """Reject gateway requests without a valid, unexpired key; tag the flow with the key."""

    def __init__(self, state: ProxyState, max_body_mb: float = DEFAULT_MAX_BODY_MB) -> None:
        self.state = state
        self.max_body_bytes = int(max_body_mb * 1024 * 1024)

    def body_verdict(self, authorization: str, length: int | None) -> BodyVerdict:
        """Decide on a gateway request's head whether its body may be read (`length` None:
        chunked, its size unknown until read)."""
        if valid_key(self.state.config, authorization) is None:
            return BodyVerdict.UNAUTHENTICATED
        if length is not None and length > self.max_body_bytes:
            return BodyVerdict.TOO_LARGE
        return BodyVerdict.READ

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """mitmproxy's path: it reads the body whole after this hook and answers nothing before
        the `request` hook, so a request whose body must not be read is cut off here."""
        if not is_gateway_request(flow, self.state.config):
            return
        headers = flow.request.headers
        length = declared_length(headers)
        verdict = self.body_verdict(headers.get("authorization", ""), length)
        unread_401 = verdict is BodyVerdict.UNAUTHENTICATED and (
            length is None or length > UNAUTHENTICATED_BODY_MAX
        )
        if verdict is BodyVerdict.TOO_LARGE or unread_401:
            flow.kill()

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not is_gateway_request(flow, self.state.config):
            return
        endpoint = flow.request.path.split("?", 1)[0]
        flow.metadata[GATEWAY] = gateway = GatewayRequest(endpoint=endpoint)
        headers = flow.request.headers
        # The raw fields, read and rewritten once: Headers' own get and del walk them each time.
        offered = [value for name, value in headers.fields if name.lower() == AUTHORIZATION]
        secret = bearer_token(b", ".join(offered).decode("utf-8", "surrogateescape"))
        if not secret:
            flow.response = error_response(
                401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key"
            )
            return
        digest = hashlib.sha256(secret.encode()).hexdigest()
        key = self.state.config.keys_by_hash.get(digest)
        if key is None:
            flow.response = error_response(401, "Invalid API key.", "invalid_api_key")
        elif key.expired(datetime.now(UTC)):
            flow.response = error_response(401, "API key has expired.", "expired_api_key")
        else:
            gateway.key = key
        # The secret must never reach an upstream or a log line.
        if offered:
            headers.fields = tuple(f for f in headers.fields if f[0].lower() != AUTHORIZATION)


def declared_length(headers: http.Headers) -> int | None:
    """The body length a request's head declares; None when only reading it would tell."""
    if "transfer-encoding" in headers:
        return None
    value = headers.get("content-length", "0")
    return int(value) if value.isdigit() else None


def bearer_token(header: str) -> str:
    """Return the token of an 'Authorization: Bearer' header, or ''."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
