"""The gateway's endpoints: which paths it serves, by which methods, and where each names its model.

The table is read on every gateway request, so lookups are one dict probe (two for paths with an
id in them); nothing here parses a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

# Where a request names its model: "local" endpoints are answered by the gateway itself; "json"
# and "form" bodies carry a `model` field (a JSON key, a multipart/form-data field); "none" never
# do (files, batches, stored responses), so the model comes from MODEL_HEADER or the key.
ModelSource = Literal["local", "json", "form", "none"]

# Names the model of a request whose body does not (files, batches); see proxy/README.md.
MODEL_HEADER = "x-spectr-model"
MODELS_PREFIX = "/v1/models/"
POST = ("POST",)


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-shaped endpoint the gateway serves."""

    # The path as usage records name it: ids become {id}, so records stay few and short.
    template: str
    methods: tuple[str, ...]
    model_in: ModelSource
    # Ids made by one replica (files, batches) are unknown to the others: such requests go to
    # the model's first available replica instead of being balanced.
    pinned: bool = False
    # Answers are audio or file bytes: they pass through as they arrive instead of being held.
    binary: bool = False


ENDPOINTS = (
    Endpoint("/v1/models", ("GET",), "local"),
    Endpoint("/v1/models/{id}", ("GET",), "local"),
    Endpoint("/v1/chat/completions", POST, "json"),
    Endpoint("/v1/completions", POST, "json"),
    Endpoint("/v1/embeddings", POST, "json"),
    Endpoint("/v1/responses", POST, "json"),
    Endpoint("/v1/responses/{id}", ("GET", "DELETE"), "none"),
    Endpoint("/v1/responses/{id}/cancel", POST, "none"),
    Endpoint("/v1/responses/{id}/input_items", ("GET",), "none"),
    Endpoint("/v1/moderations", POST, "json"),
    Endpoint("/v1/images/generations", POST, "json"),
    # Edits and variations upload images as multipart; a JSON body is read as JSON.
    Endpoint("/v1/images/edits", POST, "form"),
    Endpoint("/v1/images/variations", POST, "form"),
    Endpoint("/v1/audio/speech", POST, "json", binary=True),
    Endpoint("/v1/audio/transcriptions", POST, "form"),
    Endpoint("/v1/audio/translations", POST, "form"),
    Endpoint("/v1/rerank", POST, "json"),
    Endpoint("/v1/files", ("GET", "POST"), "none", pinned=True),
    Endpoint("/v1/files/{id}", ("GET", "DELETE"), "none", pinned=True),
    Endpoint("/v1/files/{id}/content", ("GET",), "none", pinned=True, binary=True),
    Endpoint("/v1/batches", ("GET", "POST"), "none", pinned=True),
    Endpoint("/v1/batches/{id}", ("GET",), "none", pinned=True),
    Endpoint("/v1/batches/{id}/cancel", POST, "none", pinned=True),
)

_EXACT = {e.template: e for e in ENDPOINTS if "{id}" not in e.template}
# ("files", "") is /v1/files/{id}, ("files", "content") is /v1/files/{id}/content.
_WITH_ID = {
    (parts[2], parts[4] if len(parts) > 4 else ""): e
    for e in ENDPOINTS
    if "{id}" in e.template and not e.template.startswith(MODELS_PREFIX)
    for parts in [e.template.split("/")]
}
_MODEL = next(e for e in ENDPOINTS if e.template == "/v1/models/{id}")


def find_endpoint(path: str) -> Endpoint | None:
    """Return the endpoint a request path (without its query) names, or None."""
    endpoint = _EXACT.get(path)
    if endpoint is not None:
        return endpoint
    if path.startswith(MODELS_PREFIX):
        return _MODEL  # model ids may hold '/', so the rest of the path is the id
    parts = path.split("/")  # "", "v1", collection, id[, action]
    if len(parts) not in (4, 5) or not parts[3]:
        return None
    return _WITH_ID.get((parts[2], parts[4] if len(parts) == 5 else ""))


def model_id(path: str) -> str:
    """Return the model id of a /v1/models/{id} path (clients percent-encode a '/' in it)."""
    return unquote(path[len(MODELS_PREFIX) :])
