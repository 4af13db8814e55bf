"""What the gateway does to a replica's answer: binary answers flow through as they come, and a
runtime's bare 404 for an endpoint it does not serve becomes an error that says so."""

from __future__ import annotations

import json

from mitmproxy import http

from proxy.addons.request_id import echo
from proxy.errors import error_response
from proxy.state import GATEWAY, TARGET, GatewayRequest, Target

# Bodies of a web framework's "no such route" answer, which name no API resource: FastAPI and
# Starlette (vLLM, SGLang) send {"detail": ...}, llama.cpp's server an OpenAI-shaped "File Not
# Found"; Ollama and TGI answer plain text or nothing, which is not JSON at all.
ROUTE_NOT_FOUND = frozenset({"Not Found", "Method Not Allowed", "File Not Found"})


class GatewayReplies:
    """Stream binary answers; turn 'this runtime has no such endpoint' into a clear 501."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        response = flow.response
        if gateway is None or gateway.spec is None or not gateway.spec.binary or not response:
            return
        # Speech and file contents can be large and come in pieces: hold none of it. Errors
        # stay whole, so `response` below can read them.
        if response.status_code < 300:
            response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        response = flow.response
        if gateway is None or gateway.model is None or response is None:
            return
        target: Target | None = flow.metadata.get(TARGET)
        if response.status_code not in (404, 405) or target is None or response.stream:
            return
        if not names_no_route(response.content):
            return  # an API's own 404 (no such file, model, response): the client should see it
        flow.response = endpoint_not_served(flow, gateway, target)
        flow.response.timestamp_start = response.timestamp_start
        echo(flow)


def names_no_route(content: bytes | None) -> bool:
    """Tell whether a 404/405 body is a server's 'no such path', not an API's own error."""
    try:
        body = json.loads(content or b"")
    except ValueError:
        return True
    if not isinstance(body, dict):
        return True
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message")
    elif isinstance(error, str):  # Ollama: {"error": "model 'x' not found"}
        message = error
    else:  # FastAPI's {"detail": ...}; older vLLM's {"object": "error", "message": ...}
        message = body.get("detail", body.get("message"))
    return not isinstance(message, str) or message in ROUTE_NOT_FOUND


def endpoint_not_served(
    flow: http.HTTPFlow, gateway: GatewayRequest, target: Target
) -> http.Response:
    """Answer 501: the model's runtime does not serve this endpoint."""
    assert gateway.model is not None and flow.response is not None
    message = (
        f"The model '{gateway.model.name}' runs on a server that does not serve "
        f"{flow.request.method} {gateway.endpoint} (replica {target.replica.id} answered "
        f"{flow.response.status_code})."
    )
    response = error_response(501, message, "endpoint_not_supported")
    # The openai client retries 5xx answers; asking again cannot make the endpoint appear.
    response.headers["x-should-retry"] = "false"
    return response
