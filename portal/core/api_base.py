"""flask-smorest Api that answers every error in Spectr's one JSON shape."""

from __future__ import annotations

import logging
from typing import Any

import flask_smorest
from flask import request
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from portal.core.db_outage import database_unavailable
from portal.core.errors import DatabaseUnavailable, ErrorSchema, SpectrError, error_payload
from portal.core.request_input import SpectrParser

log = logging.getLogger(__name__)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading arguments with Spectr's request parser."""

    ARGUMENTS_PARSER = SpectrParser()

    def _document_pagination_metadata(self, spec: Any, resp_doc: dict) -> None:
        # The header carries JSON text; flask-smorest documents it as an object, which no
        # client reading headers (or schemathesis) can match. Say what is really sent.
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = {
            "description": "Pagination metadata as JSON text: total, total_pages, first_page, "
            "last_page, page, previous_page, next_page",
            "schema": {"type": "string"},
        }


class SpectrApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        self._app.register_error_handler(HTTPException, self.handle_http_exception)
        self._app.register_error_handler(SpectrError, self.handle_spectr_error)
        self._app.register_error_handler(DBAPIError, self.handle_database_error)

    def handle_http_exception(self, error: HTTPException) -> Any:
        """Answer an HTTP error in JSON for API callers, as a page for browsers."""
        status = error.code or 500
        _discard_unsaved_changes()
        data = getattr(error, "data", None) or {}
        details = data.get("errors") or data.get("messages") or {}
        details = _flatten_webargs_locations(details)
        message = data.get("message") or _describe(status, error, details)
        headers = {**_protocol_headers(error), **(data.get("headers") or {})}
        if status >= 500:
            log.error("internal error on %s %s", request.method, request.path)
        if _wants_html():
            from portal.web.errors import render_error_page

            return render_error_page(status, message), status, headers
        return error_payload(status, message, details), status, headers

    def handle_spectr_error(self, error: SpectrError) -> Any:
        _discard_unsaved_changes()
        if _wants_html():
            from portal.web.errors import render_error_page

            return render_error_page(error.status, error.message), error.status, error.headers
        body = {"code": error.code, "message": error.message, "details": error.details}
        return body, error.status, error.headers

    def handle_database_error(self, error: DBAPIError) -> Any:
        """Answer 503 when the database is out of reach; any other database error stays a 500."""
        if not database_unavailable(error):
            raise error
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error.orig)
        unavailable = DatabaseUnavailable("The database is not reachable right now; try again.")
        return self.handle_spectr_error(unavailable)


def _discard_unsaved_changes() -> None:
    """A refused request stores nothing: not even what a failed flush left in the session."""
    from portal.extensions import db

    db.session.rollback()


def _flatten_webargs_locations(details: dict) -> dict:
    """webargs nests errors under 'json'/'query'; callers want the field names."""
    if set(details) <= {"json", "query", "form", "headers", "files", "view_args"} and details:
        flat: dict = {}
        for errors in details.values():
            if isinstance(errors, dict):
                flat.update(errors)
        return flat
    return details


def _describe(status: int, error: HTTPException, details: dict) -> str:
    if status == 422 and details:
        fields = ", ".join(sorted(str(name) for name in details))
        return f"Invalid input in: {fields}."
    if status == 413:
        return "The request body is over this endpoint's limit."
    if status >= 500:
        return "Spectr hit an internal error; the server log has the details."
    return error.description or error.name


def _wants_html() -> bool:
    if request.path.startswith("/api/") or request.path in {"/healthz", "/metrics"}:
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _protocol_headers(error: HTTPException) -> dict[str, str]:
    """The headers werkzeug's exception carries besides its HTML type (Allow on a 405)."""
    return {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
