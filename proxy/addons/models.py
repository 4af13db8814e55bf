"""Gateway endpoints and model resolution: /v1/models, the `model` a request names, aliases and
the key's allow-list."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mitmproxy import http

from proxy.config import GatewayKey, Model, ProxyConfig
from proxy.endpoints import MODEL_HEADER, Endpoint, find_endpoint, model_id
from proxy.errors import error_response
from proxy.multipart import find_field, is_multipart, replace_span
from proxy.state import GATEWAY, GatewayRequest, ProxyState

NO_MODEL = (
    "Name a model: in the body's 'model' field, or (for files, batches and stored responses) "
    "in the X-Spectr-Model header."
)


@dataclass
class NamedModel:
    """The model a request's body names, and where, so it can be rewritten in place."""

    name: str | None = None
    json_body: dict | None = None  # the parsed JSON body, when the model came from one
    form_span: tuple[int, int] | None = None  # the multipart field's value, when from a form
    stream: bool = False


class GatewayModels:
    """Answer /v1/models and tag model requests with the model they name."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def request(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if flow.response or gateway is None or gateway.key is None:
            return
        endpoint = find_endpoint(gateway.endpoint)
        method = flow.request.method
        if endpoint is None:
            flow.response = error_response(
                404, f"Unknown endpoint {gateway.endpoint}.", "unknown_endpoint"
            )
        elif method not in endpoint.methods:
            flow.response = method_not_allowed(gateway.endpoint, method, endpoint.methods)
        elif endpoint.model_in == "local":
            flow.response = self._answer(gateway.endpoint, gateway.key)
        else:
            gateway.spec = endpoint
            gateway.endpoint = endpoint.template  # records name the endpoint, not its ids
            self._resolve(flow, endpoint, gateway)

    def _answer(self, path: str, key: GatewayKey) -> http.Response:
        config = self.state.config
        if path == "/v1/models":
            return model_list(config, key)
        return model_object(config, key, model_id(path))

    def _resolve(self, flow: http.HTTPFlow, endpoint: Endpoint, gateway: GatewayRequest) -> None:
        config = self.state.config
        assert gateway.key is not None
        named = named_model(flow, endpoint)
        if named is None:
            flow.response = malformed_body(endpoint)
            return
        requested = named.name or fallback_model(flow, config, gateway.key)
        if not requested:
            flow.response = error_response(400, NO_MODEL, "invalid_request")
            return
        model = config.resolve_model(requested)
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
            gateway.stream = named.stream
            if named.name is not None and named.name != model.upstream_model:
                rewrite_model(flow, named, model)


def named_model(flow: http.HTTPFlow, endpoint: Endpoint) -> NamedModel | None:
    """Return the model the body names (maybe none); None when a JSON body is malformed."""
    if endpoint.model_in == "none":
        return NamedModel()
    if endpoint.model_in == "form":
        content_type = flow.request.headers.get("content-type", "")
        if is_multipart(content_type):
            return form_model(content_type, flow.request.content or b"")
    body = request_json(flow)
    if body is None:
        return None
    requested = body.get("model")
    if requested is None:
        return NamedModel(json_body=body, stream=body.get("stream") is True)
    if not isinstance(requested, str) or not requested:
        return None
    return NamedModel(requested, body, stream=body.get("stream") is True)


def malformed_body(endpoint: Endpoint) -> http.Response:
    """Answer 400 for a body the endpoint cannot read a model from."""
    form = " (or multipart/form-data with a 'model' field)" if endpoint.model_in == "form" else ""
    message = f"The body must be a JSON object with a string 'model'{form}."
    return error_response(400, message, "invalid_request")


def form_model(content_type: str, body: bytes) -> NamedModel:
    """Return the model a multipart/form-data body names in its `model` field."""
    span = find_field(content_type, body, b"model")
    if span is None:
        return NamedModel()
    name = body[span[0] : span[1]].decode(errors="replace").strip()
    return NamedModel(name or None, form_span=span)


def fallback_model(flow: http.HTTPFlow, config: ProxyConfig, key: GatewayKey) -> str | None:
    """Return the model of a request whose body names none: the header's, or the key's only one."""
    headers = flow.request.headers
    named = headers.get(MODEL_HEADER)
    if named:
        del headers[MODEL_HEADER]  # the gateway's own header; the runtime has no use for it
        return named.strip()
    allowed = [name for name in config.models if key.allows(name)]
    return allowed[0] if len(allowed) == 1 else None


def rewrite_model(flow: http.HTTPFlow, named: NamedModel, model: Model) -> None:
    """Put the model's upstream name where the request named it (an alias, or the model's name)."""
    if named.form_span is not None:
        content = flow.request.content or b""
        upstream = model.upstream_model.encode()
        flow.request.content = replace_span(content, named.form_span, upstream)
    elif named.json_body is not None:
        named.json_body["model"] = model.upstream_model
        flow.request.content = json.dumps(named.json_body).encode()


def request_json(flow: http.HTTPFlow) -> dict | None:
    """Return the request body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(flow.request.content or b"")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def method_not_allowed(path: str, method: str, allowed: tuple[str, ...]) -> http.Response:
    """Answer 405, saying (and sending in Allow) which methods the endpoint takes."""
    response = error_response(
        405, f"{path} takes {' or '.join(allowed)}, not {method}.", "method_not_allowed"
    )
    response.headers["allow"] = ", ".join(allowed)
    return response


def model_entry(name: str) -> dict[str, object]:
    """Return a model (or alias) as OpenAI's model object."""
    return {"id": name, "object": "model", "created": 0, "owned_by": "spectr"}


def model_list(config: ProxyConfig, key: GatewayKey) -> http.Response:
    """List the models (and aliases) the key may use, as OpenAI's /v1/models does."""
    data = [
        model_entry(name) for name, canonical in config.model_names.items() if key.allows(canonical)
    ]
    body = json.dumps({"object": "list", "data": data})
    return http.Response.make(200, body, {"content-type": "application/json"})


def model_object(config: ProxyConfig, key: GatewayKey, name: str) -> http.Response:
    """Answer /v1/models/{id}: the model (or alias) when the key may use it, else 404."""
    canonical = config.model_names.get(name)
    if canonical is None or not key.allows(canonical):
        # Like the list, which leaves them out: a model the key may not use is not shown to exist.
        return error_response(404, f"The model '{name}' does not exist.", "model_not_found")
    body = json.dumps(model_entry(name))
    return http.Response.make(200, body, {"content-type": "application/json"})
