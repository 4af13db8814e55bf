"""What a request may carry: a bounded body, JSON of sane shape, text without NUL characters.

Checked once at the edge for every endpoint, so no schema or view has to remember it:
- bodies are limited to SPECTR_MAX_REQUEST_BYTES unless the view declares another limit with
  `request_body_limit` (the streaming uploads declare none);
- JSON bodies are read by `load_request_json`: nesting, integer size and NUL characters
  (which Postgres cannot store) are refused with the path of the offending value;
- query arguments and form fields with NUL characters are refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from portal.core.errors import PayloadTooLarge, SpectrError, ValidationFailed

DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_JSON_INTEGER = 2**63 - 1  # the widest integer column (BIGINT)
NUL_ERROR = "must not contain NUL characters"


class MalformedRequest(SpectrError):
    status = 400
    code = "bad_request"


class _TooLongInteger:
    """Stands for an integer literal too long to read (Python refuses over 4,300 digits)."""


def request_body_limit(max_bytes: int | None) -> Callable:
    """Decorate a view method: accept bodies up to `max_bytes`, or any size when None."""

    def decorator(view: Callable) -> Callable:
        view.request_body_limit = max_bytes  # type: ignore[attr-defined]
        return view

    return decorator


def body_limit_for_request() -> int | None:
    """The body limit of the endpoint this request goes to."""
    default = current_app.config["SPECTR_MAX_REQUEST_BYTES"]
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    method = getattr(view_class, request.method.lower(), None) if view_class else view
    return getattr(method, "request_body_limit", default)


def check_request_input() -> None:
    """Before every request: refuse bodies over the limit, NUL in query args or form fields."""
    limit = body_limit_for_request()
    request.max_content_length = limit  # also stops chunked bodies as they are read
    if limit is not None and (request.content_length or 0) > limit:
        raise PayloadTooLarge(
            f"The request body ({request.content_length} bytes) is over this endpoint's limit "
            f"of {limit} bytes."
        )
    errors = {name: [NUL_ERROR] for name, value in request.args.items(multi=True) if "\0" in value}
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = request.form.items(multi=True)
        errors.update({name: [NUL_ERROR] for name, value in form if "\0" in value})
    if errors:
        raise ValidationFailed(f"Invalid input in: {', '.join(sorted(errors))}.", errors)


def header_text(name: str, max_length: int) -> str | None:
    """A request header's value, refused (400, naming it) when longer than `max_length`."""
    value = request.headers.get(name)
    if value is not None and len(value) > max_length:
        raise MalformedRequest(
            f"The {name} header is longer than {max_length} characters.",
            {name: [f"must be at most {max_length} characters"]},
        )
    return value


def header_integer(name: str, maximum: int) -> int | None:
    """A request header holding a whole number from 0 to `maximum`, or None when absent."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 20 and int(value) <= maximum):
        raise MalformedRequest(
            f"The {name} header must be a whole number from 0 to {maximum}.",
            {name: [f"must be a whole number from 0 to {maximum}"]},
        )
    return int(value)


def load_request_json(data: bytes) -> Any:
    """Parse a JSON body, refusing deep nesting, integers over 64 bits and NUL characters."""
    try:
        document = json.loads(data, parse_int=_read_integer)
    except RecursionError:
        raise _too_deep() from None
    errors = _problems(document)
    if errors:
        raise ValidationFailed(f"Invalid input in: {', '.join(sorted(errors))}.", errors)
    return document


def _read_integer(text: str) -> int | _TooLongInteger:
    return _TooLongInteger() if len(text.lstrip("-")) > 20 else int(text)


def _too_deep() -> MalformedRequest:
    return MalformedRequest(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")


def _problems(document: Any) -> dict[str, list[str]]:
    """Walk the document without recursion; return {dotted path: [problem]}."""
    errors: dict[str, list[str]] = {}
    pending: list[tuple[Any, str, int]] = [(document, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if "\0" in key:
                    errors[child.replace("\0", "\\0")] = [f"keys {NUL_ERROR}"]
                pending.append((item, child, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}.{i}" if path else str(i), depth + 1)
                           for i, item in enumerate(value))  # fmt: skip
        elif isinstance(value, str) and "\0" in value:
            errors[path or "body"] = [NUL_ERROR]
        elif isinstance(value, _TooLongInteger) or (
            isinstance(value, int) and abs(value) > MAX_JSON_INTEGER
        ):
            errors[path or "body"] = [f"integers must be at most {MAX_JSON_INTEGER} in size"]
    return errors


class SpectrParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with `load_request_json`."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(data) >= limit:
            # werkzeug stops reading a chunked body at the limit without saying so
            raise PayloadTooLarge(
                f"The request body is over this endpoint's limit of {limit} bytes."
            )
        return load_request_json(data)


def init_request_input(app: Flask) -> None:
    app.config.setdefault("SPECTR_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)
    app.before_request(check_request_input)
