"""mitmproxy's flow objects for the lean path, and the addons' hooks run on them.

The lean path keeps mitmproxy's data model (`HTTPFlow`, `Request`, `Response`): it is what
Spectr's addons read and write, so both paths run the very same policy code; only the
protocol work around it (sans-io layers, one task per hook, ~20 addons walked per event)
is left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from mitmproxy import connection, http
from mitmproxy.flow import Error

from proxy.lean.http1 import RequestHead, ResponseHead

logger = logging.getLogger(__name__)

# The flow hooks of Spectr's addons, in the order mitmproxy fires them.
HOOKS = ("request", "responseheaders", "upstream_retry", "response", "error")


def skip_message_typechecks() -> None:
    """Build mitmproxy messages without their debug-mode type checks, as `python -O` does.

    Unless Python runs with -O, mitmproxy type-checks every field of every request and
    response it builds (`if __debug__:` in `MessageData.__post_init__`): about a third of
    building a flow, for values that come from its parser or this one. Both paths gain.
    """
    http.MessageData.__post_init__ = _no_check  # type: ignore[method-assign]


def _no_check(self: object) -> None:
    pass


class HookChains:
    """Call each addon's hook for a flow, in the addons' order, as mitmproxy does."""

    def __init__(self, addons: Iterable[object]) -> None:
        addons = list(addons)
        self._chains = {
            name: tuple(getattr(a, name) for a in addons if callable(getattr(a, name, None)))
            for name in HOOKS
        }

    async def run(self, name: str, flow: http.HTTPFlow) -> None:
        for hook in self._chains[name]:
            try:
                result: Any = hook(flow)
                if result is not None:  # an async hook (Limits.request when it asks Redis)
                    await result
            except Exception:  # mitmproxy too logs an addon's error and carries on
                logger.exception("addon hook %s failed", getattr(hook, "__qualname__", hook))


def client_of(
    peername: Any, sockname: Any, tls: Any = None, server_name: str | None = None
) -> connection.Client:
    """Return mitmproxy's view of a client connection (one per connection, as there); `tls`:
    the connection's TlsSession when its TLS ended on the lean path, for `server_name`."""
    client = connection.Client(
        peername=tuple(peername[:2]) if peername else ("", 0),
        sockname=tuple(sockname[:2]) if sockname else ("", 0),
        timestamp_start=time.time(),
        state=connection.ConnectionState.OPEN,
    )
    if tls is not None:  # what the addons read of it: X-Forwarded-Proto, the access log
        client.tls = True
        client.sni = server_name
        client.timestamp_tls_setup = time.time()
        client.alpn = b"http/1.1"
        client.tls_version = tls.version
    return client


def new_flow(
    client: connection.Client, head: RequestHead, body: bytes, started: float
) -> http.HTTPFlow:
    """Return a live flow for a parsed request, as mitmproxy's reverse mode would build it."""
    flow = http.HTTPFlow(client, new_server(None), live=True)
    host, port = authority(head.host, 443 if client.tls else 80)
    flow.request = http.Request(
        host,
        port,
        head.method,
        b"https" if client.tls else b"http",
        b"",
        head.target,
        b"HTTP/1.1",
        http.Headers(head.fields),
        body,
        None,
        started,
        time.time(),
    )
    return flow


def new_server(address: tuple[str, int] | None) -> connection.Server:
    return connection.Server(address=address)


def new_response(head: ResponseHead) -> http.Response:
    return http.Response(
        b"HTTP/1.1",
        head.status,
        head.reason,
        http.Headers(head.fields),
        None,
        None,
        time.time(),
        None,
    )


def flow_error(message: str) -> Error:
    return Error(message)


def authority(host: str, default_port: int = 80) -> tuple[str, int]:
    """Split a Host header into host and port (the scheme's default when it names none)."""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and (not name.startswith("[") or name.endswith("]")):
        return name, int(port)
    return host, default_port
