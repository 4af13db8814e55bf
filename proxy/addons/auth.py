"""Gateway key authentication: Bearer secret -> SHA-256 -> key in the config."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from mitmproxy import http

from proxy.errors import error_response
from proxy.state import GATEWAY, GatewayRequest, ProxyState, is_gateway_request

AUTHORIZATION = b"authorization"


class GatewayAuth:
    """Reject gateway requests without a valid, unexpired key; tag the flow with the key."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

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


def bearer_token(header: str) -> str:
    """Return the token of an 'Authorization: Bearer' header, or ''."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
