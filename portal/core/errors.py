"""Spectr's exception tree and its one JSON error shape: {code, message, details}.

Services raise these; a single handler maps them to HTTP. Each carries a short machine code,
a sentence for a person, and optional details (for example which field was wrong).
"""

from __future__ import annotations

from typing import Any, ClassVar

import marshmallow as ma


class SpectrError(Exception):
    """Base of every error Spectr reports to a caller."""

    status = 400
    code = "bad_request"
    # Sent with the answer, e.g. Retry-After on a 503.
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(SpectrError):
    status = 422
    code = "validation_error"


class NotFound(SpectrError):
    status = 404
    code = "not_found"


class Conflict(SpectrError):
    status = 409
    code = "conflict"


class QuotaExceeded(SpectrError):
    """A project's quota refuses the action; details name the quota, its use and its limit."""

    status = 409
    code = "quota_exceeded"


class PayloadTooLarge(SpectrError):
    status = 413
    code = "payload_too_large"


class Unauthorized(SpectrError):
    status = 401
    code = "unauthorized"


class Forbidden(SpectrError):
    status = 403
    code = "forbidden"


class TooManyAttempts(SpectrError):
    """Refused for a while after repeated failures (wrong passwords)."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}  # type: ignore[misc]


class UpstreamUnavailable(SpectrError):
    """A peer Spectr depends on (agent, registry, host) could not be reached."""

    status = 502
    code = "upstream_unavailable"


class DatabaseUnavailable(SpectrError):
    """The database cannot be reached right now (restarting, down, out of connections)."""

    status = 503
    code = "unavailable"
    # Long enough for a restarting Postgres to come back, short enough for a waiting client.
    headers: ClassVar[dict[str, str]] = {"Retry-After": "2"}


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    502: "upstream_unavailable",
    501: "not_implemented",
    503: "unavailable",
    505: "http_version_not_supported",
}


class ErrorSchema(ma.Schema):
    """The error payload every API endpoint returns."""

    code = ma.fields.String(metadata={"description": "Machine-readable error code"})
    message = ma.fields.String(metadata={"description": "What went wrong, for a person"})
    details = ma.fields.Dict(metadata={"description": "Field errors or other specifics"})


def error_payload(status: int, message: str, details: dict[str, Any] | None = None) -> dict:
    """Build the JSON error body for an HTTP status."""
    return {"code": HTTP_CODES.get(status, "error"), "message": message, "details": details or {}}
