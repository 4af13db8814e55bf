"""Errors the HTTP server answers before Spectr sees the request, in Spectr's one JSON shape.

A request line over the server's limit (414), oversized headers (431) or a malformed request
(400) never reaches Flask: werkzeug's server (`spectr run`) and gunicorn (the images) answer
them with HTML of their own. API clients and the OpenAPI document expect `{code, message,
details}` everywhere, so both servers are taught to answer these in JSON too.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from portal.core.errors import error_payload


def error_body(status: int, message: str) -> bytes:
    return json.dumps(error_payload(status, message), sort_keys=True).encode()


class JsonErrorsRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, answering its own protocol errors in JSON."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        short, _ = self.responses.get(code, ("Error", ""))
        self.log_error("code %d, message %s", code, message or short)
        self.send_response(code, short)
        self.send_header("Connection", "close")
        body = error_body(code, message or short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def gunicorn_write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Replacement of gunicorn.util.write_error (HTML) with the JSON error body."""
    from gunicorn.util import write_nonblock

    body = error_body(status_int, mesg or reason)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    write_nonblock(sock, head.encode("latin1") + body)


def install_in_gunicorn() -> None:
    """Make gunicorn's workers write protocol errors as JSON (called from gunicorn.conf.py).

    gunicorn has no hook for its error page; its workers look write_error up on the util
    module at each call, so replacing it there before the workers fork is enough.
    """
    import gunicorn.util

    gunicorn.util.write_error = gunicorn_write_error
