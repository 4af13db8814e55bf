"""The agent's OpenAPI 3.1 document, written by hand and checked against the router in tests."""

from __future__ import annotations

from typing import Any

from agent import CONTRACT, __version__

_ERROR = {"$ref": "#/components/schemas/Error"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ndjson(description: str) -> dict[str, Any]:
    line = {"type": "object", "description": description}
    return {"description": description, "content": {"application/x-ndjson": {"schema": line}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {400: "Bad input", 401: "Missing or wrong bearer token", 404: "No such object",
             409: "Conflict with the object's state", 411: "Body without Content-Length",
             413: "Body over 1 MiB", 422: "Input breaks a rule",
             429: "Too many failed authentications", 502: "Docker engine error",
             426: "Send Connection: Upgrade and Upgrade: tcp",
             503: "The models folder cannot be used"}  # fmt: skip
    if 502 in statuses:  # whatever reaches the engine may meet its own 400 (engine_rejected)
        statuses = (400, *statuses)
    ordered = sorted({401, 429, *statuses})
    return {str(s): {"description": texts[s], **_json(_ERROR)} for s in ordered}


def _param(name: str, schema: dict[str, Any], where: str = "query", text: str = "") -> dict:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": text}  # fmt: skip


def _op(summary: str, ok: dict[str, Any], *errors: int, params: list | None = None,
        body: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    if body:  # a missing, bad or oversized Content-Length, or JSON nested too deep
        errors = (*errors, 400, 411, 413)
    if any(param["in"] == "path" for param in params or []):  # ".", "..", "/" or controls
        errors = (*errors, 400)
    operation: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*errors)}}
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {"required": True, **_json(body)}
    return operation


_ID = _param("id", _STR, "path", "container id or name")
_REF = _param("reference", _STR, "path", "image reference or id, URL-encoded (/ as %2F)")
_VOLUME = _param("name", _STR, "path", "volume name")
_NETWORK = _param("id", _STR, "path", "network id or name")
_LABELS = _param("label", _STR, text="KEY or KEY=VALUE; repeat to require several")
_PRUNED = {"200": _json({"type": "object", "properties": {
    "deleted": {"type": "array", "items": _STR}, "space_reclaimed": _INT}})}  # fmt: skip
_TIMEOUT = _param("timeout", _INT, text="seconds before the engine kills it (default 10)")
_NO_CONTENT = {"204": {"description": "Done"}}

_CONTAINER_SPEC = {
    "type": "object", "required": ["image"], "additionalProperties": False,
    "properties": {
        "image": _STR, "name": _STR, "command": {"type": "array", "items": _STR},
        "entrypoint": {"type": "array", "items": _STR}, "env": _STR_MAP, "labels": _STR_MAP,
        "ports": {"type": "array", "items": {"type": "object", "properties": {
            "container_port": _INT, "protocol": {"enum": ["tcp", "udp"]},
            "host_port": {"type": ["integer", "null"]},
            "host_ip": {"type": "string", "default": "127.0.0.1"}}}},
        "volumes": {"type": "array", "items": {"type": "object", "properties": {
            "source": _STR, "target": _STR, "read_only": _BOOL,
            "type": {"enum": ["bind", "volume"]}}}},
        "restart_policy": {"type": "object", "properties": {
            "name": {"enum": ["no", "always", "unless-stopped", "on-failure"]},
            "maximum_retry_count": _INT}},
        "cpus": {"type": "number"}, "memory_bytes": _INT,
        "gpus": {"description": '"all", {"count": n} or {"device_ids": [...]}'},
        "user": _STR, "working_dir": _STR, "network": _STR,
        "start": {"type": "boolean", "default": True},
    },
}  # fmt: skip

_TTY_SIZE = {
    "type": "object", "additionalProperties": False,
    "properties": {"cols": {"type": "integer", "minimum": 1, "maximum": 1000},
                   "rows": {"type": "integer", "minimum": 1, "maximum": 1000}},
}  # fmt: skip
_TERMINAL_SPEC = {
    "type": "object", "required": ["argv"], "additionalProperties": False,
    "properties": {"argv": {"type": "array", "items": _STR, "minItems": 1}, "user": _STR,
                   **_TTY_SIZE["properties"]},
}  # fmt: skip
_EXEC_SPEC = {
    "type": "object", "required": ["argv"], "additionalProperties": False,
    "properties": {"argv": {"type": "array", "items": _STR, "minItems": 1}, "user": _STR,
                   "workdir": _STR, "env": _STR_MAP,
                   "timeout_s": {"type": "number", "default": 60, "maximum": 3600}},
}  # fmt: skip

_PULL_SPEC = {
    "type": "object", "required": ["image"],
    "properties": {"image": _STR, "auth": {"type": "object", "properties": {
        "username": _STR, "password": _STR, "serveraddress": _STR}}},
}  # fmt: skip

_DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
_MODEL_FILE = {
    "type": "object",
    "required": ["path", "digest", "size"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "description": "relative POSIX path"},
        "digest": _DIGEST,
        "size": {"type": "integer", "minimum": 0},
    },
}
_MODEL_PULL_SPEC = {
    "type": "object", "required": ["digest", "name", "files", "source"],
    "additionalProperties": False,
    "properties": {
        "digest": _DIGEST, "name": _STR, "verify": {"type": "boolean", "default": True},
        "files": {"type": "array", "items": _MODEL_FILE, "minItems": 1},
        "source": {"type": "object", "required": ["url", "repository"],
                   "additionalProperties": False, "properties": {
                       "url": {"type": "string", "description": "https:// or http:// registry"},
                       "repository": _STR, "username": _STR, "password": _STR,
                       "ca_pem": {"type": "string", "description": "CA of the registry (PEM)"}}},
    },
}  # fmt: skip
_MODEL = {"type": "object", "required": ["digest", "name", "files", "size_bytes", "path"],
          "properties": {"digest": _DIGEST, "name": _STR, "pulled_at": _STR,
                         "files": {"type": "array", "items": _MODEL_FILE},
                         "size_bytes": _INT, "path": _STR}}  # fmt: skip
_MODEL_DIGEST = _param("digest", _DIGEST, "path", "the model's manifest digest, sha256:<hex>")

_LOG_PARAMS = [
    _ID, _param("follow", _BOOL, text="keep streaming until the container stops"),
    _param("since", _STR, text="Unix timestamp or ISO-8601 time"),
    _param("tail", _STR, text="number of lines or 'all'"), _param("timestamps", _BOOL),
    _param("stdout", _BOOL), _param("stderr", _BOOL),
]  # fmt: skip


def _paths() -> dict[str, Any]:
    obj = {"type": "object"}
    arr = {"type": "array", "items": obj}
    return {
        "/v1/health": {"get": _op("Agent version, engine reachability and GPU readings", {"200": _json(obj)})},
        "/v1/facts": {"get": _op("Host facts: OS, kernel, CPU, memory, disks, Docker, GPUs",
                                 {"200": _json(obj)})},
        "/v1/openapi.json": {"get": _op("This document", {"200": _json(obj)})},
        "/metrics": {"get": _op("Prometheus metrics", {"200": {"description": "text format"}})},
        "/v1/images": {"get": _op("List images", {"200": _json(arr)}, 502)},
        "/v1/images/pull": {"post": _op(
            "Pull an image; progress lines, then {status: done} or {error}",
            {"200": _ndjson("progress event")}, 400, 404, 422, 502, body=_PULL_SPEC)},
        "/v1/images/prune": {"post": _op(
            "Remove dangling images (untagged, unused) with every given label", _PRUNED, 400, 502,
            params=[_LABELS])},
        "/v1/images/{reference}": {
            "get": _op("Inspect an image", {"200": _json(obj)}, 404, 502, params=[_REF]),
            "delete": _op("Remove an image", {"200": _json(obj)}, 404, 409, 502,
                          params=[_REF, _param("force", _BOOL), _param("noprune", _BOOL)]),
        },
        "/v1/containers": {
            "get": _op("List containers", {"200": _json(arr)}, 400, 502, params=[
                _param("all", _BOOL, text="include stopped ones (default true)"),
                _param("label", _STR, text="KEY or KEY=VALUE; repeat to require several")]),
            "post": _op("Create and (unless start is false) start a container",
                        {"201": _json(obj)}, 400, 404, 409, 422, 502, body=_CONTAINER_SPEC),
        },
        "/v1/containers/{id}": {
            "get": _op("Inspect a container", {"200": _json(obj)}, 404, 502, params=[_ID]),
            "delete": _op("Remove a container", _NO_CONTENT, 404, 409, 502,
                          params=[_ID, _param("force", _BOOL), _param("volumes", _BOOL)]),
        },
        "/v1/containers/{id}/start": {"post": _op("Start", _NO_CONTENT, 404, 502, params=[_ID])},
        "/v1/containers/{id}/stop": {"post": _op("Stop", _NO_CONTENT, 400, 404, 502,
                                                 params=[_ID, _TIMEOUT])},
        "/v1/containers/{id}/restart": {"post": _op("Restart", _NO_CONTENT, 400, 404, 502,
                                                    params=[_ID, _TIMEOUT])},
        "/v1/containers/{id}/stats": {"get": _op("One stats sample", {"200": _json(obj)}, 404, 409,
                                                 502, params=[_ID])},
        "/v1/containers/{id}/logs": {"get": _op(
            "Logs as JSON lines {stream, data[, ts]}; blank lines are keepalives; {error} ends a failed one",
            {"200": _ndjson("log frame")}, 400, 404, 502, params=_LOG_PARAMS)},
        "/v1/containers/{id}/exec": {"post": _op(
            "Run an argv (no shell); {stream, data} lines, then {exit_code, timed_out} or {error}",
            {"200": _ndjson("output frame or exit")}, 404, 409, 422, 502, params=[_ID],
            body=_EXEC_SPEC)},
        "/v1/containers/{id}/terminal": {"post": _op(
            "With Connection: Upgrade and Upgrade: tcp, a TTY exec on this connection: 101, "
            "X-Exec-Id, then raw bytes both ways; the exec is killed when the caller leaves",
            {"101": {"description": "Switched to the exec's TTY"}}, 404, 409, 422, 426, 502,
            params=[_ID], body=_TERMINAL_SPEC)},
        "/v1/exec/{id}/resize": {"post": _op(
            "Resize an exec's TTY", {"200": _json(obj)}, 404, 409, 502,
            params=[_param("id", _STR, "path", "exec id")], body=_TTY_SIZE)},
        "/v1/exec/{id}": {"get": _op(
            "Whether an exec runs, and its exit code", {"200": _json(obj)}, 404, 502,
            params=[_param("id", _STR, "path", "exec id")])},
        "/v1/volumes": {"get": _op("List volumes, with their sizes unless size=0",
                                   {"200": _json(arr)}, 400, 502,
                                   params=[_param("size", _BOOL, text="default true")])},
        "/v1/volumes/prune": {"post": _op(
            "Remove every volume no container uses (named ones too) with every given label",
            _PRUNED, 400, 502, params=[_LABELS])},
        "/v1/volumes/{name}": {"delete": _op(
            "Remove a volume (409 while a container uses it)", _NO_CONTENT, 404, 409, 502,
            params=[_VOLUME, _param("force", _BOOL)])},
        "/v1/networks": {"get": _op("List networks", {"200": _json(arr)}, 502)},
        "/v1/networks/{id}": {"delete": _op(
            "Remove a network (409 with running containers on it, or a built-in one)",
            _NO_CONTENT, 404, 409, 502, params=[_NETWORK])},
        "/v1/models": {"get": _op(
            "The model cache: its folder, free bytes on its disk, and the complete models",
            {"200": _json({"type": "object", "properties": {
                "root": {"type": "string"}, "free_bytes": _INT,
                "models": {"type": "array", "items": _MODEL}}})}, 503)},
        "/v1/models/pull": {"post": _op(
            "Fetch a model's missing files; {event: start|progress|file} lines, then "
            "{event: done} or {event: error, message}",
            {"200": _ndjson("pull event")}, 400, 409, 422, 503, body=_MODEL_PULL_SPEC)},
        "/v1/models/{digest}": {
            "get": _op("One complete model", {"200": _json(_MODEL)}, 404, 422,
                       params=[_MODEL_DIGEST]),
            "delete": _op("Remove a model and the blobs no other model uses",
                          {"200": _json({"type": "object", "properties": {"freed_bytes": _INT}})},
                          404, 422, params=[_MODEL_DIGEST]),
        },
    }  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document of API v1."""
    error = {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": _STR, "message": _STR, "details": {"type": "object"}},
    }
    return {
        "openapi": "3.1.0",
        # info.version is the package's; the contract a client checks is x-spectr-contract.
        "info": {"title": "Spectr agent", "version": __version__, "x-spectr-contract": CONTRACT},
        "paths": _paths(),
        "security": [{"bearer": []}],
        "components": {
            "schemas": {"Error": error},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
