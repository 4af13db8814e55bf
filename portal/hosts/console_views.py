"""The console's WebSocket: `/hosts/{id}/containers/{name or id}/console?shell=sh&cols=&rows=`.

Who may open one, and with what, is decided before the WebSocket handshake (401, 403, 422 as
plain HTTP answers): an operator, from a page of this site (a browser sends the session cookie with a WebSocket opened
by any site, so the Origin must be this one), a shell offered and a sensible size. What goes wrong after that (no such container, not
running, an engine that cannot be reached) is said on the open socket, where a page can read it.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from simple_websocket import ConnectionClosed, Server

from portal.core.errors import Forbidden, SpectrError
from portal.core.security import require_principal
from portal.hosts import console
from portal.hosts.service import visible_host
from portal.projects.access import can_somewhere

bp = Blueprint("host_console", __name__, url_prefix="/hosts")
WEBSOCKET_OPTIONS = {"ping_interval": 20, "max_message_size": 64 * 1024}
CLOSE_WAIT_S = 2.0


@bp.route("/<id:host_id>/containers/<string(maxlength=128):container_id>/console", websocket=True)
def console_socket(host_id: int, container_id: str) -> Any:
    require_principal()
    if not can_somewhere("operator"):  # then the host's own project, below
        raise Forbidden("A console needs the 'operator' role.")
    _same_site()
    host = visible_host(host_id, "operator")
    shell = console.valid_shell(request.args.get("shell", "sh"))
    size = console.parse_size(request.args.get("cols"), request.args.get("rows"))
    ws = Server(request.environ, **WEBSOCKET_OPTIONS)
    try:
        opened = console.open_console(host, container_id, shell, size)
    except SpectrError as exc:
        _send_quietly(ws, {"end": "refused", "message": exc.message})
    else:
        console.relay(opened, ws, console.idle_timeout_s())
    _close_quietly(ws)
    return _after_websocket(ws)


def _same_site() -> None:
    """Refuse a browser's WebSocket opened by another site's page (cross-site hijacking)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser: a script with a token or a cookie it holds
    came_from, host = urlsplit(origin), urlsplit(f"//{request.host}")
    # Browsers send Host with the port; some clients leave a default-looking one out.
    same = came_from.netloc == request.host or (
        host.port is None and came_from.hostname == host.hostname
    )
    if not same:
        current_app.logger.warning("console refused for origin %s", origin)
        raise Forbidden("A console opens only from Spectr's own pages.")


def _send_quietly(ws: Server, document: dict[str, Any]) -> None:
    try:
        ws.send(json.dumps(document))
    except ConnectionClosed:
        return


def _close_quietly(ws: Server) -> None:
    try:
        ws.close()
    except Exception:  # already closed by the browser
        return


def _after_websocket(ws: Server) -> Response:
    """The answer after the socket closed: nothing more may be written on the connection."""
    if ws.mode == "werkzeug":
        # werkzeug writes this answer's head after the app returns: a browser would read it as
        # a broken frame. Once the browser answered the close, shut the connection, and the
        # write fails as a dropped connection, quietly.
        ws.thread.join(timeout=CLOSE_WAIT_S)
        with contextlib.suppress(OSError):
            ws.sock.shutdown(socket.SHUT_RDWR)

    class Done(Response):
        def __call__(self, environ: Any, start_response: Any) -> Any:
            if ws.mode == "werkzeug":
                return super().__call__(environ, start_response)
            if ws.mode == "gunicorn":
                raise StopIteration()
            return []

    return Done()
