"""Gateway model resolution: /v1/models, the `model` field, aliases and the key's allow-list."""

from __future__ import annotations

import json

from mitmproxy import http

from proxy.config import GatewayKey, ProxyConfig
from proxy.errors import error_response
from proxy.state import GATEWAY, GatewayRequest, ProxyState

MODEL_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})


class GatewayModels:
    """Answer /v1/models and tag model requests with the model they name."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def request(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if flow.response or gateway is None or gateway.key is None:
            return
        config = self.state.config
        method = flow.request.method
        if gateway.endpoint == "/v1/models" and method == "GET":
            flow.response = model_list(config, gateway.key)
        elif gateway.endpoint not in MODEL_ENDPOINTS:
            flow.response = error_response(
                404, f"Unknown endpoint {gateway.endpoint}.", "unknown_endpoint"
            )
        elif method != "POST":
            flow.response = error_response(
                405, f"{gateway.endpoint} takes POST, not {method}.", "method_not_allowed"
            )
        else:
            self._resolve(flow, config, gateway)

    def _resolve(self, flow: http.HTTPFlow, config: ProxyConfig, gateway: GatewayRequest) -> None:
        body = request_json(flow) or {}
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            flow.response = error_response(
                400, "The body must be a JSON object with a string 'model'.", "invalid_request"
            )
            return
        model = config.resolve_model(requested)
        assert gateway.key is not None
        if model is None:
            flow.response = error_response(
                404, f"The model '{requested}' does not exist.", "model_not_found"
            )
        elif not gateway.key.allows(model.name):
            flow.response = error_response(
                403, f"This key may not use the model '{model.name}'.", "model_not_allowed"
            )
        else:
            gateway.model = model
            gateway.stream = body.get("stream") is True
            if requested != model.upstream_model:
                body["model"] = model.upstream_model
                flow.request.content = json.dumps(body).encode()


def request_json(flow: http.HTTPFlow) -> dict | None:
    """Return the request body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(flow.request.content or b"")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def model_list(config: ProxyConfig, key: GatewayKey) -> http.Response:
    """List the models (and aliases) the key may use, as OpenAI's /v1/models does."""
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "spectr"}
        for name, canonical in config.model_names.items()
        if key.allows(canonical)
    ]
    body = json.dumps({"object": "list", "data": data})
    return http.Response.make(200, body, {"content-type": "application/json"})
