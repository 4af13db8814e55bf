"""One gateway request on the lean path: the addons' hooks around a direct exchange with replicas.

The steps are mitmproxy's, as `proxy/error_hook.py` extends them, so the addons cannot tell the
paths apart: `request`; the answer of an addon (`responseheaders`, `response`) or an attempt
upstream; `responseheaders`; a 5xx/429 that Routing keeps back (`RETRY_WANTED`) is read whole
and offered to `upstream_retry`, as is an attempt that failed before anything reached the
client (refused, reset, closed, timed out: `UPSTREAM_FAILED`); `RESEND` sends the request again
wherever Routing pointed it; then the answer streams (`flow.response.stream`, its callable
applied to each piece) or goes whole, and `response` runs; a failure with no retry left runs
`error`, whose answer (Routing's 502/504) goes to the client; a client that leaves runs `error`
with `CLIENT_GONE` (recorded as 499).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from mitmproxy import http

from proxy.error_hook import CLIENT_GONE, RESEND, RETRY_WANTED, UPSTREAM_FAILED
from proxy.errors import error_response
from proxy.lean.flows import HookChains, flow_error, new_response, new_server
from proxy.lean.http1 import (
    LAST_CHUNK,
    ResponseBody,
    ResponseHead,
    chunk,
    read_response_head,
    request_bytes,
    response_head,
)
from proxy.lean.upstream import Upstream, UpstreamPool
from proxy.lean.wire import PeerClosed, Wire
from proxy.state import ABORT

CLIENT_GONE_MESSAGE = "Client disconnected."
# A stream lets other connections run at least once per this many pieces.
FAIR_SHARE_PIECES = 16


class ClientGone(ConnectionError):
    """The client closed its connection before its answer was complete."""


class UpstreamFailed(Exception):
    """An attempt failed before its answer reached the client: it may be sent elsewhere."""


class Exchange:
    """Answer one request whose flow the lean server built; tell whether to keep the client."""

    def __init__(
        self, hooks: HookChains, pool: UpstreamPool, client: Wire, flow: http.HTTPFlow, keep: bool
    ) -> None:
        self.hooks = hooks
        self.pool = pool
        self.client = client
        self.flow = flow
        self.keep_alive = keep
        self.upstream: Upstream | None = None  # the current attempt's connection
        self.client_gone = False
        self.timed_out = False
        self.sent = False  # an attempt went upstream

    async def run(self) -> bool:
        flow = self.flow
        self.client_gone = self.client.closed  # it may have left while its body was read
        self.client.on_lost = self._client_lost
        flow.metadata[ABORT] = self._time_out
        try:
            await self.hooks.run("request", flow)
            if flow.response is None:
                return await self._forward()
            flow.response.timestamp_start = time.time()
            await self.hooks.run("responseheaders", flow)
            return await self._answer()
        finally:
            self.client.on_lost = None
            flow.live = False
            flow.metadata.pop(ABORT, None)
            self._drop_upstream()

    async def _forward(self) -> bool:
        flow = self.flow
        while True:
            try:
                done = await self._attempt()
            except ClientGone:
                return await self._cancelled()
            except UpstreamFailed as failure:
                self._drop_upstream()
                flow.response = None
                flow.metadata[UPSTREAM_FAILED] = str(failure)
                await self.hooks.run("upstream_retry", flow)
                if not flow.metadata.pop(RESEND, False):
                    return await self._failed(str(failure))
                del flow.metadata[UPSTREAM_FAILED]
                continue
            if done is not None:
                return done

    async def _attempt(self) -> bool | None:
        """Send the request where the flow points; None when it is to be sent again (RESEND)."""
        flow = self.flow
        if self.client_gone:
            raise ClientGone()
        self.timed_out = False
        request = flow.request
        if self.sent:  # each attempt has its own server connection, as in error_hook's resend
            flow.server_conn = new_server((request.host, request.port))
        else:
            flow.server_conn.address = (request.host, request.port)
        self.sent = True
        head, upstream = await self._send()
        flow.response = new_response(head)
        await self.hooks.run("responseheaders", flow)
        body = ResponseBody(upstream, head, request.data.method)
        if flow.metadata.pop(RETRY_WANTED, False):
            flow.response.raw_content = await self._read_all(body)
            self._release(upstream, body)
            await self.hooks.run("upstream_retry", flow)
            if flow.metadata.pop(RESEND, False):
                flow.response = None
                return None
            return await self._answer()
        if flow.response.stream:
            return await self._stream(upstream, body)
        flow.response.raw_content = await self._read_all(body)
        self._release(upstream, body)
        return await self._answer()

    async def _send(self) -> tuple[ResponseHead, Upstream]:
        """Send the request to its replica and read the answer's head."""
        request = self.flow.request
        address = (request.scheme, request.host, request.port)
        data = request_bytes(
            request.data.method, request.data.path, request.headers.fields, request.raw_content
        )
        upstream = self.pool.idle(address)
        while True:
            if upstream is None:
                upstream = await self._connect(address)
            self.upstream = upstream
            self.flow.server_conn.timestamp_tcp_setup = upstream.connected_at
            upstream.write(data)
            try:
                return await read_response_head(upstream), upstream
            except (PeerClosed, ValueError) as exc:
                # A kept-alive connection the replica closed while it was idle: the request
                # never reached it, so it goes once more, on a new connection.
                stale = isinstance(exc, PeerClosed) and upstream.reused and not upstream.buffer
                self._drop_upstream()
                if not stale:
                    raise UpstreamFailed(f"Server disconnected ({exc}).") from None
                upstream = None

    async def _connect(self, address: tuple[str, str, int]) -> Upstream:
        try:
            upstream = await self.pool.connect(address)
        except (OSError, TimeoutError) as exc:
            raise UpstreamFailed(f"Connect to {address[1]}:{address[2]} failed: {exc!r}") from None
        if self.client_gone or self.timed_out:  # while it was connecting
            upstream.close()
            raise ClientGone() if self.client_gone else UpstreamFailed("Timed out.")
        return upstream

    async def _read_all(self, body: ResponseBody) -> bytes:
        try:
            return await body.read_all()
        except (PeerClosed, ValueError) as exc:
            raise UpstreamFailed(f"Server disconnected mid-answer ({exc}).") from None

    async def _stream(self, upstream: Upstream, body: ResponseBody) -> bool:
        """Pass the answer on piece by piece, through the stream callable an addon set."""
        flow = self.flow
        response = flow.response
        assert response is not None
        client = self.client
        client.write(self._head(response, None))
        transform = response.stream if callable(response.stream) else None
        try:
            pieces = 0
            while (piece := await body.read()) is not None:
                self._write_chunks(transform(piece) if transform else piece)
                await client.drain()
                if self.client_gone:
                    raise ClientGone()
                pieces += 1
                if pieces % FAIR_SHARE_PIECES == 0:
                    # Pieces already buffered are read without waiting: a fast stream would
                    # keep the loop from every other connection until its buffer is empty.
                    await asyncio.sleep(0)
            if transform is not None:
                self._write_chunks(transform(b""))
        except ClientGone:
            return await self._cancelled()
        except (PeerClosed, ValueError, UpstreamFailed) as exc:
            # Cut after its first bytes: nothing can be retried; the client sees the cut.
            flow.error = flow_error(f"Server disconnected mid-stream ({exc}).")
            self._drop_upstream()
            await self.hooks.run("error", flow)
            return False
        self._release(upstream, body)
        response.timestamp_end = time.time()
        await self.hooks.run("response", flow)
        client.write(LAST_CHUNK)
        return self.keep_alive

    async def _answer(self) -> bool:
        """Send a whole answer (read whole, or made by an addon) after the `response` hooks."""
        flow = self.flow
        assert flow.response is not None
        flow.response.timestamp_end = time.time()
        await self.hooks.run("response", flow)
        self._send_whole(flow.response)
        return self.keep_alive

    async def _failed(self, message: str) -> bool:
        """No attempt is left: the `error` hooks answer (Routing's 502/504 JSON)."""
        flow = self.flow
        flow.error = flow_error(message)
        await self.hooks.run("error", flow)
        if self.client_gone:
            return False
        response = flow.response or error_response(502, "The upstream failed.", "upstream_error")
        response.timestamp_end = time.time()
        self._send_whole(response)
        return self.keep_alive

    async def _cancelled(self) -> bool:
        flow = self.flow
        flow.metadata[CLIENT_GONE] = CLIENT_GONE_MESSAGE
        flow.error = flow_error(CLIENT_GONE_MESSAGE)
        self._drop_upstream()  # the replica stops generating for nobody
        await self.hooks.run("error", flow)
        return False

    def _send_whole(self, response: http.Response) -> None:
        content = response.raw_content or b""
        head = self._head(response, len(content))
        # An answer to HEAD says how long the body would be, and sends none.
        self.client.write(head if self.flow.request.data.method == b"HEAD" else head + content)

    def _head(self, response: http.Response, length: int | None) -> bytes:
        fields = response.headers.fields
        return response_head(
            response.status_code, response.data.reason, fields, length, self.keep_alive
        )

    def _write_chunks(self, pieces: bytes | Iterable[bytes]) -> None:
        if isinstance(pieces, bytes):
            pieces = (pieces,)
        data = b"".join(chunk(piece) for piece in pieces if piece)
        if data:
            self.client.write(data)

    def _release(self, upstream: Upstream, body: ResponseBody) -> None:
        """The answer was read to its end: keep the connection for another request."""
        self.upstream = None
        if body.reusable:
            self.pool.give_back(upstream)
        else:
            upstream.close()

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _client_lost(self) -> None:
        self.client_gone = True
        if self.upstream is not None:
            self.upstream.abort(ClientGone())

    def _time_out(self) -> None:
        """Routing's timeout sweeper: the replica did not answer in time (its `_expire`)."""
        self.timed_out = True
        if self.upstream is not None:
            self.upstream.abort(UpstreamFailed("Timed out waiting for the answer."))
