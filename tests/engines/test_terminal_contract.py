"""The interactive exec (a TTY with stdin) of both engines on the real engine: the local Docker
socket and a real spectr-agent process over TLS (mutual TLS in the last test)."""

from __future__ import annotations

import time

import pytest

from portal.engines import AgentEngine, ContainerEngine, RetryPolicy
from portal.engines import errors as engine_errors
from portal.engines.terminal import TerminalSession, TerminalSize
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def screen_until(session: TerminalSession, text: str, timeout: float = 20) -> str:
    """What the terminal printed, up to `text` (or its end)."""
    shown, deadline = b"", time.monotonic() + timeout
    while text.encode() not in shown:
        assert time.monotonic() < deadline, f"no {text!r}; the screen shows {shown[-300:]!r}"
        data = session.recv(0.5)
        if data == b"":
            break
        shown += data or b""
    return shown.decode(errors="replace")


def processes(container) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(" ".join(p) for p in container.top()["Processes"])


def test_type_resize_and_exit(engine: ContainerEngine, made: Made) -> None:
    box = made.container("tty")
    session = engine.open_terminal(box.id, ["/bin/sh"], TerminalSize(100, 30))
    try:
        session.send(b"echo hi; echo sum-$((6*7)); stty size\n")
        screen = screen_until(session, "30 100")
        assert "hi\r\nsum-42\r\n" in screen  # a TTY: the typing echoed, CR LF line ends
        session.resize(TerminalSize(120, 40))
        session.send(b"stty size\n")
        screen_until(session, "40 120")
        session.send(b"exit 7\n")
        assert "exit 7" in screen_until(session, "never printed")  # read until it ended
    finally:
        exit_code = session.close()
    assert exit_code == 7


def test_closing_the_session_kills_the_shell(engine: ContainerEngine, made: Made) -> None:
    box = made.container("tty-close")
    session = engine.open_terminal(box.name, ["/bin/sh"], TerminalSize())
    session.send(b"echo go-$((3*3)); exec sleep 5151\n")
    screen_until(session, "go-9")
    deadline = time.monotonic() + 20
    while "sleep 5151" not in processes(box):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    session.close()
    while "sleep 5151" in processes(box):
        assert time.monotonic() < deadline + 10, "the shell outlived its session"
        time.sleep(0.1)


def test_a_missing_container(engine: ContainerEngine) -> None:
    with pytest.raises(engine_errors.NotFound):
        engine.open_terminal("spectr-test-no-such-container", ["/bin/sh"], TerminalSize())


def test_the_terminal_through_an_agent_with_mutual_tls(agent_factory, pki, made: Made) -> None:  # type: ignore[no-untyped-def]
    mtls = agent_factory(client_ca=pki.ca.cert_path)
    box = made.container("tty-mtls")
    with AgentEngine(mtls.url, mtls.token, pki.ca.cert_path, client_cert=pki.client) as engine:
        session = engine.open_terminal(box.name, ["/bin/sh"], TerminalSize())
        session.send(b"echo via-$((40+2))\n")
        screen_until(session, "via-42")
        session.close()
    retry = RetryPolicy(attempts=1)
    without_cert = AgentEngine(mtls.url, mtls.token, pki.ca.cert_path, retry=retry)
    with without_cert, pytest.raises(engine_errors.Unavailable):
        without_cert.open_terminal(box.name, ["/bin/sh"], TerminalSize())
    wrong_token = AgentEngine(mtls.url, "not-the-token", pki.ca.cert_path,
                              client_cert=pki.client, retry=retry)  # fmt: skip
    with wrong_token, pytest.raises(engine_errors.EngineError, match="credentials"):
        wrong_token.open_terminal(box.name, ["/bin/sh"], TerminalSize())
