"""Error responses in OpenAI's JSON error shape."""

from __future__ import annotations

import json

from mitmproxy import http

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def error_response(
    status: int, message: str, code: str, retry_after_s: int | None = None
) -> http.Response:
    """Build a JSON error response the OpenAI client libraries understand."""
    body = {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "api_error"),
            "param": None,
            "code": code,
        }
    }
    headers = {"content-type": "application/json"}
    if retry_after_s is not None:
        headers["retry-after"] = str(max(1, retry_after_s))
    return http.Response.make(status, json.dumps(body), headers)
