"""The interactive console: a browser's WebSocket relayed to a TTY exec in a container.

Keystrokes come as binary messages and go to the exec's stdin; the terminal's output goes back
as binary messages; a text message is a control ({"resize": [cols, rows]}). The last message
the browser gets is a text one, {"end": reason, "message": ..., "exit_code": ...}, then the
socket closes. Every session is audited twice: when it opens (who, host, container, command)
and when it ends (how long, why).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app

from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, UpstreamUnavailable, ValidationFailed
from portal.engines import ContainerEngine, EngineError
from portal.engines import errors as engine_errors
from portal.engines.terminal import TerminalSession, TerminalSize
from portal.extensions import db
from portal.hosts.models import Host
from portal.hosts.relay import open_engine

SHELLS = {"sh": ["/bin/sh"], "bash": ["/bin/bash"]}
POLL_S = 0.5  # how often the relay looks at the clock, the exec and the container
# A shell killed with its container can end before the engine records the container's stop.
STOP_SETTLE_S = 3.0
EXEC_ENDED = {"end": "exec_ended"}  # the input loop's answer when the exec's output ended


class Socket(Protocol):
    """What the relay needs of a WebSocket (simple_websocket.Server has it)."""

    def send(self, data: str | bytes) -> None: ...

    def receive(self, timeout: float | None = None) -> str | bytes | None: ...


@dataclass
class Console:
    """One open console: the engine, the container and the exec's TTY."""

    host: Host
    engine: ContainerEngine
    container: str
    container_id: str
    command: list[str]
    session: TerminalSession
    started: float = field(default_factory=time.monotonic)

    @property
    def target(self) -> str:
        return f"host:{self.host.name}/container:{self.container}"


def idle_timeout_s() -> float:
    """SPECTR_CONSOLE_IDLE_SECONDS: a console with no keystroke and no output this long closes."""
    return float(current_app.config["SPECTR_CONSOLE_IDLE_SECONDS"])


def parse_size(cols: str | None, rows: str | None) -> TerminalSize:
    """The terminal's size from the query string; 400 naming the field when it is not one."""
    try:
        return TerminalSize(int(cols or 80), int(rows or 24))
    except ValueError:
        raise ValidationFailed(
            "cols and rows must be whole numbers from 1 to 1000.",
            {"cols": ["1 to 1000"], "rows": ["1 to 1000"]},
        ) from None


def valid_shell(shell: str) -> str:
    """The shell asked for, when it is one of those offered; 400 naming the field otherwise."""
    if shell not in SHELLS:
        raise ValidationFailed(
            f"shell must be one of {', '.join(SHELLS)}.", {"shell": [f"one of {list(SHELLS)}"]}
        )
    return shell


def open_console(host: Host, container: str, shell: str, size: TerminalSize) -> Console:
    """Start the shell with a TTY in a running container, and audit the session's start."""
    valid_shell(shell)
    engine = open_engine(host)
    try:
        info = engine.inspect_container(container)
        if info.state != "running":
            raise Conflict(f"Container '{info.name}' is {info.state}; a console needs it running.")
        session = engine.open_terminal(info.id, SHELLS[shell], size)
    except engine_errors.NotFound:
        engine.close()
        raise NotFound(f"No container '{container}' on host '{host.name}'.") from None
    except EngineError as exc:
        engine.close()
        raise UpstreamUnavailable(f"Cannot open a console: {exc.message}") from None
    except BaseException:
        engine.close()
        raise
    console = Console(host, engine, info.name, info.id, SHELLS[shell], session)
    record_audit(
        "host.container.console",
        console.target,
        details={"command": console.command, "phase": "start", "exec_id": session.exec_id},
    )
    db.session.commit()
    return console


def relay(console: Console, ws: Socket, idle_s: float) -> dict[str, Any]:
    """Carry bytes both ways until the shell exits, the container stops, the browser leaves or
    nobody typed and nothing was printed for `idle_s`; then say why, audit it and clean up."""
    output = _OutputPump(console.session, ws)
    output.start()
    end: dict[str, Any] = {"end": "closed", "message": "The browser closed the console."}
    try:
        try:
            end = _input_loop(console, ws, output, idle_s)
        except Exception as exc:  # the browser's socket broke (simple_websocket.ConnectionClosed)
            end = {"end": "closed", "message": f"The connection closed: {type(exc).__name__}."}
        finally:
            exit_code = console.session.close()  # kills the shell if it still runs
            output.join(timeout=5)
        if end is EXEC_ENDED:
            end = why_the_exec_ended(console.engine, console.container_id, exit_code)
    finally:
        console.engine.close()
    end["exit_code"] = exit_code
    if end["end"] == "exited" and exit_code is not None:
        end["message"] = f"The shell exited with code {end['exit_code']}."
    _audit_end(console, end)
    if end["end"] != "closed":
        _quietly(lambda: ws.send(json.dumps(end)))
    return end


def _input_loop(console: Console, ws: Socket, output: _OutputPump, idle_s: float) -> dict[str, Any]:
    last_activity = time.monotonic()
    while True:
        message = ws.receive(timeout=POLL_S)
        if isinstance(message, bytes) and message:
            console.session.send(message)
            last_activity = time.monotonic()
        elif isinstance(message, str) and message:
            _control(console, message)
        if output.ended.is_set():
            return EXEC_ENDED
        last_activity = max(last_activity, output.last_output)
        if time.monotonic() - last_activity > idle_s:
            return {
                "end": "idle",
                "message": f"Closed after {idle_s:.0f} s without a keystroke or any output.",
            }


def _control(console: Console, message: str) -> None:
    try:
        document = json.loads(message)
        cols, rows = document["resize"]
        console.session.resize(TerminalSize(int(cols), int(rows)))
    except (ValueError, KeyError, TypeError):
        return  # not a control this relay knows: ignored, like a terminal ignores bad escapes
    except EngineError:
        return  # the exec ended meanwhile: the output pump says so next


def why_the_exec_ended(
    engine: ContainerEngine, container_id: str, exit_code: int | None
) -> dict[str, Any]:
    """The container was stopped or removed, or the shell exited by itself.

    A shell killed by a signal (137 when its container is stopped) can end before the engine
    has recorded the container's stop: then the container is looked at again for a moment, so
    the person is told the container stopped rather than that their shell exited.
    """
    killed = exit_code is None or exit_code > 128
    deadline = time.monotonic() + (STOP_SETTLE_S if killed else 0)
    while True:
        try:
            state = engine.inspect_container(container_id).state
        except engine_errors.NotFound:
            return {"end": "container_removed", "message": "The container was removed."}
        except EngineError:
            state = "running"  # unknown: the shell's own end is what is known
        if state != "running":
            return {"end": "container_stopped", "message": f"The container is {state}."}
        if time.monotonic() >= deadline:
            return {"end": "exited", "message": "The shell exited."}
        time.sleep(0.2)


def _audit_end(console: Console, end: dict[str, Any]) -> None:
    record_audit(
        "host.container.console",
        console.target,
        details={
            "command": console.command,
            "phase": "end",
            "exec_id": console.session.exec_id,
            "reason": end["end"],
            "exit_code": end.get("exit_code"),
            "seconds": round(time.monotonic() - console.started, 1),
        },
    )
    db.session.commit()


def _quietly(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:  # the browser already left: nobody to tell
        return


class _OutputPump(threading.Thread):
    """The terminal's output to the browser, in a thread of its own (reads block)."""

    def __init__(self, session: TerminalSession, ws: Socket) -> None:
        super().__init__(name="console-output", daemon=True)
        self.session, self.ws = session, ws
        self.ended = threading.Event()
        self.last_output = time.monotonic()

    def run(self) -> None:
        try:
            while not self.session.closed:
                data = self.session.recv(POLL_S)
                if data is None:
                    continue
                if not data:
                    return
                self.last_output = time.monotonic()
                self.ws.send(data)
        except Exception:  # the browser left mid-send: the input loop sees it too
            return
        finally:
            self.ended.set()
