"""The proxy's listening socket: gateway requests served here, every other connection by mitmproxy."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

from mitmproxy import connection, ctx, http
from mitmproxy.proxy.mode_servers import ServerInstance

from proxy.addons.auth import BodyVerdict, GatewayAuth, too_large_response
from proxy.errors import error_response
from proxy.lean.exchange import Exchange
from proxy.lean.flows import HookChains, client_of, new_flow
from proxy.lean.http1 import (
    MAX_HEAD,
    BodyTooLarge,
    RequestHead,
    parse_request_head,
    read_request_body,
    response_head,
)
from proxy.lean.tls import NeedMore, ServerContexts, TlsSession, client_hello_sni, lean_tls_host
from proxy.lean.upstream import UpstreamPool
from proxy.lean.wire import PeerClosed, Wire
from proxy.state import GATEWAY_PREFIX, ProxyState, host_matches, host_of

logger = logging.getLogger(__name__)

TLS_HANDSHAKE = 0x16  # the first byte of a TLS ClientHello record
BACKLOG = 1024
# A client connection that sends no request for this long is closed (mitmproxy's own limit),
# by a sweep this often (cheaper than a timer per request).
IDLE_S = 600.0
IDLE_SWEEP_S = 30.0


class LeanGateway:
    """Accept the proxy's connections; serve plain HTTP/1.1 gateway requests without mitmproxy.

    A connection whose next request is anything else (a route's host or path, TLS, HTTP/2,
    an upgrade, a head this parser does not vouch for) is handed, with the bytes read so far,
    to mitmproxy, which serves it to its end with the same addons.
    """

    def __init__(
        self,
        state: ProxyState,
        addons: list[object],
        mode: str,
        host: str,
        port: int,
        upstream_insecure: bool = False,
    ) -> None:
        self.state = state
        self.hooks = HookChains(addons)
        # Whether a body may be read is the key check's decision, made on the head.
        self.auth = next((a for a in addons if isinstance(a, GatewayAuth)), GatewayAuth(state))
        self.pool = UpstreamPool(upstream_insecure)
        self.tls_contexts = ServerContexts()
        self.mode, self.host, self.port = mode, host, port
        self._server: asyncio.Server | None = None
        self._mitmproxy: ServerInstance | None = None
        self._tasks: set[asyncio.Task] = set()  # the loop holds tasks weakly
        self._clients: set[ClientWire] = set()  # connections served here, not handed over

    async def listen(self) -> None:
        """Bind the listening socket (before the master runs, so a taken port stops the start)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientWire(self),
            self.host or None,
            self.port,
            backlog=BACKLOG,
            start_serving=False,
        )

    async def running(self) -> None:
        # Not started: it only lends its connection handling to the connections handed over.
        self._mitmproxy = ServerInstance.make(self.mode, ctx.master.addons.get("proxyserver"))
        assert self._server is not None
        await self._server.start_serving()
        self._keep(asyncio.get_running_loop().create_task(self._close_idle()))

    def done(self) -> None:
        if self._server is not None:
            self._server.close()
        self.pool.close()

    def accept(self, wire: ClientWire) -> None:
        self._clients.add(wire)
        self._keep(asyncio.get_running_loop().create_task(self._serve(wire)))

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_SWEEP_S)
            self.close_idle(time.monotonic())

    def close_idle(self, now: float) -> None:
        """Close the client connections that waited longer than IDLE_S for a request."""
        for wire in list(self._clients):
            if wire.waiting_since and now - wire.waiting_since > IDLE_S:
                wire.close()  # its _serve sees the end and returns

    async def _serve(self, wire: ClientWire) -> None:
        client: connection.Client | None = None
        try:
            while True:
                wire.waiting_since = time.monotonic()
                size = await head_length(wire)
                if size is None and wire.tls is None and await self._start_tls(wire):
                    continue  # the ClientHello named a gateway host: requests come decrypted
                wire.waiting_since = 0.0  # (kept while a ClientHello trickles in: idle too)
                if size == 0 or wire.closed:
                    wire.close()
                    return
                head = parse_request_head(bytes(wire.buffer[:size])) if size else None
                if wire.tls is not None:
                    if not self._serves_on_tls(wire, head):
                        return
                elif head is None or not self._is_gateway(head):
                    self._hand_over(wire)
                    return
                del wire.buffer[:size]
                started = time.time()
                body, unread = await self._read_body(wire, head)
                if body is None:
                    return
                if client is None:
                    client = client_of(wire.peername, wire.sockname, wire.tls, wire.server_name)
                flow = new_flow(client, head, body, started)
                if not await Exchange(self.hooks, self.pool, wire, flow, head.keep_alive).run():
                    if unread:
                        await wire.linger_close()
                    else:
                        wire.close()
                    return
        except PeerClosed:
            wire.close()
        except Exception:
            logger.exception("lean gateway: connection from %s failed", wire.peername)
            wire.abort(ConnectionAbortedError())
        finally:
            self._clients.discard(wire)

    async def _read_body(self, wire: ClientWire, head: RequestHead) -> tuple[bytes | None, bool]:
        """The request's body, and whether it was left unread: a request without a valid key
        gets b"" (the key check answers 401, then the connection closes, its body still on
        it). None when the request was refused here (and the connection closed)."""
        if not head.chunked and not head.length:
            return b"", False  # no body: nothing to hold back, the connection may stay open
        authorization = b", ".join(v for n, v in head.fields if n.lower() == b"authorization")
        verdict = self.auth.body_verdict(
            authorization.decode("latin-1"), None if head.chunked else head.length
        )
        if verdict is BodyVerdict.TOO_LARGE:
            await answer_and_close(wire, too_large_response(self.auth.max_body_bytes))
            return None, False
        if verdict is BodyVerdict.UNAUTHENTICATED:
            head.keep_alive = False
            head.expect_continue = False
            return b"", True
        try:
            return await read_request_body(wire, head, self.auth.max_body_bytes), False
        except BodyTooLarge:
            await answer_and_close(wire, too_large_response(self.auth.max_body_bytes))
        except ValueError as exc:  # a malformed chunked body
            refuse(wire, f"Malformed request body: {exc}.")
        return None, False

    async def _start_tls(self, wire: ClientWire) -> bool:
        """Terminate TLS here when the connection opens with a ClientHello naming a host the
        lean path serves on TLS (proxy/lean/tls.py); False leaves it to mitmproxy."""
        if wire.buffer[:1] != bytes((TLS_HANDSHAKE,)):
            return False
        while True:
            try:
                server_name = client_hello_sni(bytes(wire.buffer))
                break
            except NeedMore:
                if not await wire.fill():
                    return False
        config = self.state.config
        if not lean_tls_host(config, server_name) or config.gateway.tls is None:
            return False
        try:
            context = self.tls_contexts.context_for(config.gateway.tls)
        except (OSError, ssl.SSLError) as exc:  # mitmproxy then says so to the client
            logger.error("lean gateway: cannot load the gateway's certificate: %s", exc)
            return False
        wire.start_tls(context, server_name)  # type: ignore[arg-type]
        return True

    def _serves_on_tls(self, wire: ClientWire, head: RequestHead | None) -> bool:
        """On a connection whose TLS ends here: a request for a host this connection does not
        serve gets 421 (its client should open a connection of its own for it), a head the
        lean path does not read 400; both close it. Anything else is served here."""
        if head is None:
            refuse(wire, "This connection serves HTTP/1.1 requests of the gateway only.")
            return False
        if not lean_tls_host(self.state.config, host_of(head.host)):
            answer(wire, error_response(421, f"Host {head.host!r} is not served on this "
                                             "connection.", "misdirected_request"))  # fmt: skip
            wire.close()
            return False
        return True

    def _is_gateway(self, head: RequestHead) -> bool:
        hosts = self.state.config.gateway.hosts
        return head.target.startswith(GATEWAY_PREFIX_BYTES) and host_matches(
            hosts, host_of(head.host)
        )

    def _hand_over(self, wire: ClientWire) -> None:
        assert self._mitmproxy is not None
        reader, writer = wire.hand_over()
        self._keep(
            asyncio.get_running_loop().create_task(self._mitmproxy.handle_stream(reader, writer))
        )


GATEWAY_PREFIX_BYTES = GATEWAY_PREFIX.encode()


class ClientWire(Wire):
    """A client's connection, served by the lean gateway until handed over."""

    def __init__(self, gateway: LeanGateway) -> None:
        super().__init__()
        self.gateway = gateway
        self.peername: tuple | None = None
        self.sockname: tuple | None = None
        self.waiting_since = 0.0  # when it began to wait for its next request (0: not waiting)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        self.gateway.accept(self)

    # TLS ended here (proxy/lean/tls.py): what the parser reads and the exchange writes is
    # plaintext; the transport carries TLS records.

    tls: TlsSession | None = None
    server_name: str | None = None
    tls_closed = False  # close_notify sent

    def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        """From now on the connection is TLS: the bytes already here (the ClientHello) and all
        that follow are decrypted into the buffer."""
        self.tls, self.server_name = TlsSession(context), server_name
        pending = bytes(self.buffer)
        self.buffer.clear()
        self._from_network(pending)

    def data_received(self, data: bytes) -> None:
        if self.tls is None:
            super().data_received(data)
        else:
            self._from_network(data)

    def _from_network(self, data: bytes) -> None:
        assert self.tls is not None
        try:
            plain, reply = self.tls.receive(data)
        except ssl.SSLError as exc:  # a bad handshake or record: nothing to answer in HTTP
            self.abort(PeerClosed(f"TLS: {exc}"))
            return
        if reply and self.transport is not None and not self.closed:
            self.transport.write(reply)
        if plain:
            super().data_received(plain)
        if self.tls.closed_by_peer:
            self.eof_received()

    def write(self, data: bytes) -> None:
        if self.tls is None:
            super().write(data)
        elif not self.closed and self.transport is not None:
            self.transport.write(self.tls.send(data))

    def close(self) -> None:
        self._notify_close()
        super().close()

    async def linger_close(self) -> None:
        self._notify_close()  # before the FIN that linger_close sends: no write may follow it
        await super().linger_close()

    def _notify_close(self) -> None:
        """Send TLS's close_notify, once, before the connection's end."""
        if self.tls is None or self.tls_closed or self.closed or self.transport is None:
            return
        self.tls_closed = True
        self.transport.write(self.tls.close_notify())


async def head_length(wire: Wire) -> int | None:
    """Wait for a whole request head; return its length, 0 when the client closed first.

    None: what came is no HTTP/1 head the lean path reads (a TLS handshake, a head too long).
    """
    start = 0
    while True:
        end = wire.buffer.find(b"\r\n\r\n", start)
        if end >= 0:
            return end + 4
        if wire.buffer[:1] == bytes((TLS_HANDSHAKE,)) or len(wire.buffer) > MAX_HEAD:
            return None
        start = max(0, len(wire.buffer) - 3)
        if not await wire.fill():
            return 0


def refuse(wire: Wire, message: str) -> None:
    """Answer 400 and close: the request cannot be read."""
    answer(wire, error_response(400, message, "invalid_request"))
    wire.close()


async def answer_and_close(wire: Wire, response: http.Response) -> None:
    """Answer a request whose body is not (wholly) read, then close the connection once the
    client stopped sending it."""
    answer(wire, response)
    await wire.linger_close()


def answer(wire: Wire, response: http.Response) -> None:
    """Write a whole answer that closes the connection."""
    content = response.raw_content or b""
    wire.write(
        response_head(response.status_code, response.data.reason, response.headers.fields,
                      len(content), keep_alive=False)
        + content
    )  # fmt: skip
