"""The console's relay for a host reached through its agent: the portal's own credentials (the
agent token and its client certificate of the Spectr CA, mutual TLS) open a TTY exec through a
real spectr-agent process on the real engine.

The browser's WebSocket is stood in for by a queue here (the relay only sends and receives
messages); the WebSocket itself is tested end to end in tests/hosts/test_console.py.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import pytest

from portal.core.audit import AuditEvent
from portal.engines.terminal import TerminalSize
from portal.extensions import db
from portal.hosts import console
from tests.hosts.test_host_resources_api import agent_host  # noqa: F401 - the fixture
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.docker]


class QueueSocket:
    """The browser's side of the relay: what it typed, and what it was sent."""

    def __init__(self) -> None:
        self.typed: queue.Queue[str | bytes] = queue.Queue()
        self.shown: list[str | bytes] = []
        self.changed = threading.Condition()

    def send(self, data: str | bytes) -> None:
        with self.changed:
            self.shown.append(data)
            self.changed.notify_all()

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        try:
            return self.typed.get(timeout=timeout)
        except queue.Empty:
            return None

    def screen(self) -> str:
        return b"".join(d for d in self.shown if isinstance(d, bytes)).decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while text not in self.screen():
                assert self.changed.wait(deadline - time.monotonic()), self.screen()[-300:]


def test_a_console_through_the_hosts_agent(app: Any, agent_host: Any, made: Made) -> None:  # noqa: F811
    box = made.container("agent-console")
    browser = QueueSocket()

    def type_and_watch() -> None:
        browser.typed.put(b"echo agent-$((40+2)); stty size\n")
        browser.wait_for("20 90")
        browser.typed.put(json.dumps({"resize": [132, 43]}))
        browser.typed.put(b"stty size\n")
        browser.wait_for("43 132")
        browser.typed.put(b"exit 4\n")

    typist = threading.Thread(target=type_and_watch, daemon=True)
    with app.test_request_context():  # the relay runs in the request's thread, as served
        opened = console.open_console(agent_host, box.name, "sh", TerminalSize(90, 20))
        typist.start()
        console.relay(opened, browser, idle_s=60)
    typist.join(timeout=5)
    assert "agent-42" in browser.screen()
    end = json.loads(browser.shown[-1])  # type: ignore[arg-type]
    assert end == {"end": "exited", "message": "The shell exited with code 4.", "exit_code": 4}
    phases = [(e.details["phase"], e.target) for e in
              db.session.query(AuditEvent).filter_by(action="host.container.console")]  # fmt: skip
    assert phases == [("start", f"host:agent-host/container:{box.name}"),
                      ("end", f"host:agent-host/container:{box.name}")]  # fmt: skip
