"""`spectr-agent --config /etc/spectr-agent/agent.json`: serve the agent API over TLS."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

from agent import __version__
from agent.auth import hash_token
from agent.config import ConfigError, add_arguments, load_config

if TYPE_CHECKING:
    from agent.server import AgentServer

log = logging.getLogger("spectr_agent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectr-agent", description=__doc__)
    add_arguments(parser)
    parser.add_argument(
        "--hash-token",
        action="store_true",
        help="read a bearer token on stdin, print its token_sha256, exit",
    )
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the agent until SIGTERM or SIGINT; SIGHUP reloads its credentials."""
    args = _parser().parse_args(argv)
    if args.hash_token:
        print(hash_token(sys.stdin.readline().strip()))
        return 0
    # Before the port opens: a SIGHUP sent as soon as the agent accepts connections (a
    # credential rotation right after a start) is kept for the reloader, not fatal as SIGHUP's
    # default action is (CI's reload test lost its agent that way under load).
    reload_wanted = threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_wanted.set())
    # SIGTERM and SIGINT likewise: a stop sent as soon as the port accepts (a service manager
    # stopping an agent it just started) ends the agent cleanly, not by the default action (CI's
    # clean-stop test saw exit -15 under load: the handler came after the bind).
    stop_wanted = threading.Event()
    server: AgentServer | None = None

    def _shutdown(signum: int, frame: object) -> None:
        stop_wanted.set()
        if server is not None:  # serve_forever returns at once, even if it has not started yet
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    try:
        config = load_config(args)
    except ConfigError as error:
        print(f"spectr-agent: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    from agent.server import AgentApp, AgentServer  # imported late: --hash-token stays light

    try:
        server = AgentServer(AgentApp(config))
    except (OSError, ValueError) as error:
        print(f"spectr-agent: cannot start: {error}", file=sys.stderr)
        return 1
    if stop_wanted.is_set():  # asked to stop before the server was there to shut down
        server.server_close()
        return 0
    # Off the signal handler: reading files and building a TLS context may take a moment.
    threading.Thread(
        target=_reload_when_wanted, args=(server, args, reload_wanted), daemon=True
    ).start()
    log.info(
        "spectr-agent %s listening on https://%s:%s%s",
        __version__,
        config.listen_host,
        server.server_address[1],
        " (mutual TLS)" if config.client_ca else "",
    )
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    return 0


def _reload_when_wanted(
    server: AgentServer, args: argparse.Namespace, wanted: threading.Event
) -> None:
    """One reload at a time, for as long as the agent runs; SIGHUPs that come during a reload
    make one more (it reads the newest configuration)."""
    while True:
        wanted.wait()
        wanted.clear()
        reload_credentials(server, args)


def reload_credentials(server: AgentServer, args: argparse.Namespace) -> None:
    """Read the configuration again and apply its certificate, key, client CA and tokens.

    A configuration that does not load leaves the running credentials as they were.
    """
    try:
        config = load_config(args)
        needs_restart = server.reload(config)
    except (ConfigError, OSError, ValueError) as error:
        log.error("reload refused, credentials unchanged: %s", error)
        return
    tokens = 2 if config.previous_token_sha256 else 1
    log.info("reloaded: certificate %s, %d token(s) accepted%s", config.tls_cert, tokens,
             ", mutual TLS" if config.client_ca else "")  # fmt: skip
    if needs_restart:
        log.warning("restart the agent to apply: %s", ", ".join(needs_restart))


if __name__ == "__main__":
    sys.exit(main())
