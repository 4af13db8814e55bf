"""Interactive exec: a TTY in a container, on the caller's own connection.

`POST /v1/containers/{id}/terminal` with `Connection: Upgrade` and `Upgrade: tcp` (as Docker's own
exec start) and `{"argv": [...], "cols": 80, "rows": 24}`: the agent creates the exec with a TTY
and stdin, hijacks Docker's exec start, answers `101 UPGRADED` with `X-Exec-Id`, and from then
on copies bytes both ways: what the caller sends is typed into the TTY, what the TTY prints goes
back raw. When the caller leaves, the exec's processes are killed; when the exec ends, the
connection closes. Authentication is the agent's as for every call: mutual TLS and the token,
checked on the request's head before anything of this runs.

`POST /v1/exec/{id}/resize` `{"cols", "rows"}` resizes the TTY; `GET /v1/exec/{id}` says whether
it runs and its exit code.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
from typing import Any

from agent.docker_api import DockerAPI, DockerError, DockerStream, quote_segment
from agent.errors import ApiError, bad_request, invalid
from agent.streams import StreamRoutes
from agent.web import Request, Router

log = logging.getLogger(__name__)
READ_BYTES = 65536
POLL_S = 1.0


class TerminalRoutes:
    """The terminal's three routes, on the agent's single Docker client."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker
        self._streams = StreamRoutes(docker)  # its exec kill, shared with the one-shot exec

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("POST", "/v1/containers/{id}/terminal", self.terminal)
        router.add("POST", "/v1/exec/{id}/resize", self.resize)
        router.add("GET", "/v1/exec/{id}", self.inspect)

    def terminal(self, request: Request) -> None:
        """Upgrade the caller's connection to the exec's TTY and relay until either side ends."""
        headers = request.handler.headers
        if (headers.get("Upgrade") or "").lower() != "tcp":
            raise ApiError(426, "upgrade_required", "send Connection: Upgrade and Upgrade: tcp")
        body = request.json()
        argv, cols, rows = _terminal_request(body)
        container = quote_segment(request.params["id"])
        config = {"AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True,
                  "Cmd": argv, "Env": ["TERM=xterm-256color"]}  # fmt: skip
        if isinstance(body.get("user"), str):
            config["User"] = body["user"]
        exec_id = self.docker.request("POST", f"/containers/{container}/exec", body=config)["Id"]
        source = self.docker.open_stream(
            "POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": True}, upgrade=True
        )
        with contextlib.suppress(DockerError):  # a shell that already exited has no TTY to size
            self._resize(exec_id, cols, rows)
        handler = request.handler
        handler.close_connection = True
        handler.wfile.write(
            b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"X-Exec-Id: " + exec_id.encode() + b"\r\n\r\n"
        )
        handler.wfile.flush()
        try:
            caller_left = _pump(handler.connection, source)
        finally:
            source.close()
        if caller_left:
            killed = self._streams._kill(exec_id)
            log.info("terminal %s: the caller left; killed: %s", exec_id[:12], killed)

    def resize(self, request: Request) -> tuple[int, Any]:
        """Resize an exec's TTY."""
        cols, rows = _size(request.json())
        self._resize(quote_segment(request.params["id"]), cols, rows)
        return 200, {"cols": cols, "rows": rows}

    def inspect(self, request: Request) -> tuple[int, Any]:
        """Whether an exec runs, and its exit code once it ended."""
        state = self.docker.request("GET", f"/exec/{quote_segment(request.params['id'])}/json")
        return 200, {"running": bool(state.get("Running")), "exit_code": state.get("ExitCode")}

    def _resize(self, exec_id: str, cols: int, rows: int) -> None:
        self.docker.request("POST", f"/exec/{exec_id}/resize", params={"h": rows, "w": cols})


def _pump(caller: socket.socket, source: DockerStream) -> bool:
    """Copy bytes both ways until one side ends; True when the caller left first."""
    tty = source.sock
    pending = source.take_buffered()
    try:
        if pending:
            caller.sendall(pending)
        while True:
            tls_ready = isinstance(caller, ssl.SSLSocket) and caller.pending()
            ready = [caller] if tls_ready else select.select([caller, tty], [], [], POLL_S)[0]
            if tty in ready:
                data = tty.recv(READ_BYTES)
                if not data:
                    return False  # the exec ended (its shell exited, or the container stopped)
                caller.sendall(data)
            if caller in ready:
                try:
                    data = caller.recv(READ_BYTES)
                except ssl.SSLWantReadError:
                    continue
                if not data:
                    return True
                tty.sendall(data)
    except OSError:
        return True  # the caller's connection broke
    finally:
        with contextlib.suppress(OSError):
            caller.shutdown(socket.SHUT_RDWR)


def _terminal_request(body: dict[str, Any]) -> tuple[list[str], int, int]:
    argv = body.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise invalid("argv: must be a non-empty list of strings; no shell is involved")
    return (argv, *_size(body))


def _size(body: dict[str, Any]) -> tuple[int, int]:
    cols, rows = body.get("cols", 80), body.get("rows", 24)
    for name, value in (("cols", cols), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise bad_request(f"{name} must be a whole number from 1 to 1000")
    return cols, rows
