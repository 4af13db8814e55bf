"""An interactive exec: a TTY in a container, as one two-way byte stream.

With Tty=true Docker sends the terminal's output raw (no stdout/stderr frames) and takes
keystrokes on the same hijacked connection. Both engines hand back a TerminalSession: the local
one over the Docker socket, the agent client over the agent's upgraded TLS connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TERM = "xterm-256color"
READ_BYTES = 65536


@dataclass(frozen=True)
class TerminalSize:
    """Columns and rows of the browser's terminal, within what Docker accepts."""

    cols: int = 80
    rows: int = 24

    def __post_init__(self) -> None:
        if not (1 <= self.cols <= 1000 and 1 <= self.rows <= 1000):
            raise ValueError("cols and rows must be between 1 and 1000")


class TerminalSession:
    """Keystrokes in, screen output out, resize, and the exec's end."""

    def __init__(
        self,
        sock: socket.socket,
        exec_id: str,
        resize: Callable[[TerminalSize], None],
        finish: Callable[[], int | None],
        release: Callable[[], None] = lambda: None,
        pending: bytes = b"",
    ) -> None:
        self.sock, self.exec_id = sock, exec_id
        self._resize, self._finish, self._release = resize, finish, release
        self._pending = pending  # output read with the HTTP answer's head
        self.closed = False

    def send(self, data: bytes) -> None:
        """Type into the terminal."""
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes | None:
        """Output, or None when nothing came within `timeout`; b"" once the exec ended."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        pending_tls = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending_tls and not select.select([self.sock], [], [], timeout)[0]:
            return None
        try:
            return self.sock.recv(READ_BYTES)
        except ssl.SSLWantReadError:
            return None
        except OSError:
            return b""

    def resize(self, size: TerminalSize) -> None:
        """Tell the TTY its new size (the shell redraws for it)."""
        self._resize(size)

    def close(self) -> int | None:
        """End the session: the exec's processes are killed if still running; its exit code."""
        if self.closed:
            return None
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            return self._finish()
        finally:
            self._release()
