"""Routing: host + path prefix (or the gateway's model) -> pool -> replica, with failover.

Retries and fallbacks, as nginx's `proxy_next_upstream` and LiteLLM's router do them: an
attempt that fails before anything reached the client is sent again, by mitmproxy's own
connection handling, to another replica of the pool (up to `retries` more), then, for gateway
models, to the model's fallbacks in order. `proxy/error_hook.py` gives this addon the moment
to decide (its `upstream_retry` hook): after a failed connect, a reset or closed connection,
or this addon's timeout, and after a 5xx or 429 answer that `responseheaders` kept from the
client (such answers are read whole, never streamed, so nothing of them leaks out). Once
response headers went to the client nothing is retried. Plain routes retry only connections
that never opened (their requests may not be safe to send twice); the gateway's completions
and embeddings are, so they also retry timeouts, resets, 5xx and 429 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from mitmproxy import ctx, http
from mitmproxy.proxy import server_hooks

from proxy.addons.request_id import echo
from proxy.config import Replica
from proxy.error_hook import CLIENT_GONE, RESEND, RETRY_WANTED, UPSTREAM_FAILED
from proxy.errors import error_response
from proxy.fallbacks import first_fallback, retry_after_s
from proxy.state import (
    ABORT,
    GATEWAY,
    TARGET,
    GatewayRequest,
    ProxyState,
    Target,
    choose_replica,
    match_route,
    request_host,
)

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
SWEEP_S = 0.1
RELEASED = "spectr.released"
# The error code of an upstream failure the proxy answered (access log, metrics).
FAILURE = "spectr.failure"
# Tells the client which model it asked for when a fallback answered instead.
FALLBACK_HEADER = "x-spectr-fallback-from"
# Answers of a gateway replica that open its breaker as a refused connection does: it is
# unavailable. A 500 or a 429 is retried elsewhere, but the replica stays in the pool.
MARKS_DOWN = frozenset({502, 503, 504})
# Headers the proxy sets on every forwarded request (a client's own are replaced).
FORWARDED_BY_PROXY = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})


class Routing:
    """Send each request to a healthy replica; retry failed attempts on another one."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        # (client connection id, replica address) -> flow waiting for a new upstream connection.
        self._connecting: dict[tuple[str, tuple[str, int]], http.HTTPFlow] = {}
        # flow id -> (deadline, flow) for requests still waiting for response headers; one
        # sweeper checks them, which is cheaper than a timer per request.
        self._deadlines: dict[str, tuple[float, http.HTTPFlow]] = {}
        self._sweeper: asyncio.Task | None = None

    def running(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def done(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response:
            return
        target = self._target(flow)
        if target is None:
            return
        flow.metadata[TARGET] = target
        self._forward_headers(flow)
        self._start_attempt(flow, target)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        flow = self._connecting.pop((data.client.id, data.server.address), None)
        target: Target | None = flow.metadata.get(TARGET) if flow else None
        if flow is None or target is None:
            return
        while not await reachable(target.replica, min(target.timeout_s, CONNECT_TIMEOUT_S)):
            # Cheaper than a failed attempt: the connection is not made yet, so the replica
            # changes in place. When none is left, mitmproxy's own connect fails and
            # `upstream_retry` moves on to the fallbacks.
            self._note_failure(flow, target, status=0, connected=False)
            replacement = self._next_replica(target)
            if replacement is None:
                return
            logger.warning("replica %s refused; retrying on %s", target.replica.id, replacement.id)
            self.state.balancer.release(target.replica)
            target.probe = self.state.balancer.acquire(replacement)
            target.replica = replacement
            target.attempts += 1
            target.failure_noted = False
            data.server.address = replacement.address
            data.server.sni = replacement.host
            self._send_to(flow, replacement)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._deadlines.pop(flow.id, None)
        response = flow.response
        if response is None:
            return
        target: Target | None = flow.metadata.get(TARGET)
        if target is not None:
            gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
            status = response.status_code
            if gateway is not None and (status >= 500 or status == 429):
                # Keep it from the client until `upstream_retry` knows whether another try follows.
                flow.metadata[RETRY_WANTED] = True
                return
            if target.probe:  # any answer of a route's replica, or a gateway's non-failure
                target.probe = False
                self.state.balancer.probe_done(target.replica, True)
            if gateway is not None and gateway.fallback_from:
                response.headers[FALLBACK_HEADER] = gateway.fallback_from
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            response.stream = True

    def upstream_retry(self, flow: http.HTTPFlow) -> None:
        """Note a failed attempt; point the flow at the next replica or fallback, if any."""
        target: Target | None = flow.metadata.get(TARGET)
        if target is None:
            return
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        status = flow.response.status_code if flow.response else 0
        connected = flow.server_conn.timestamp_tcp_setup is not None
        self._note_failure(flow, target, status, connected)
        label, failed = target.label, target.replica.id
        if gateway is None and connected:
            return  # a route's request may have had effects: never send it twice
        replica = self._next_replica(target)
        if replica is None and gateway is not None:
            replica = self._next_fallback(flow, gateway, target)
        if replica is None:
            if flow.response is not None:
                self._answered(flow, gateway)
            return
        why = status or ("timeout" if target.timed_out else flow.metadata.get(UPSTREAM_FAILED))
        logger.warning("%s: %s failed (%s); retrying on %s", label, failed, why, replica.id)
        self._move(flow, target, replica)
        flow.metadata[RESEND] = True

    def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        target: Target | None = flow.metadata.get(TARGET)
        if target is not None:
            connected = flow.server_conn.timestamp_tcp_setup is not None
            upstream_failed = UPSTREAM_FAILED in flow.metadata
            if (
                not target.failure_noted
                and CLIENT_GONE not in flow.metadata
                and (upstream_failed or not connected)
            ):
                self._note_failure(flow, target, 0, connected)  # without the error_hook patch
            if flow.response is None and upstream_failed:
                # The error hook patch sends this instead of mitmproxy's own text/html 502.
                flow.response = upstream_failure(flow, target, connected)
                self._answered(flow, flow.metadata.get(GATEWAY))
                echo(flow)
        self._finish(flow)

    def _target(self, flow: http.HTTPFlow) -> Target | None:
        config = self.state.config
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        fallback_index = 0
        if gateway is not None:
            if gateway.model is None:
                return None
            pool = config.pools[gateway.model.pool]
            label, timeout_s, retries = (
                gateway.model.name,
                config.gateway.timeout_s,
                config.gateway.retries,
            )
        else:
            host, path = request_host(flow), flow.request.path
            route = match_route(config, host, path)
            if route is None:
                flow.response = error_response(404, f"No route for {host}{path}.", "no_route")
                return None
            if route.strip_prefix:
                flow.request.path = path[len(route.path_prefix.rstrip("/")) :] or "/"
            pool = config.pools[route.pool]
            label, timeout_s, retries = route.name, route.timeout_s, route.retries
        replica = choose_replica(self.state.balancer, pool, gateway)
        if replica is None and gateway is not None:
            found = first_fallback(self.state, flow, gateway, 0)
            if found is not None:
                fallback_index, pool, replica = found
        if replica is None:
            flow.response = error_response(
                503,
                f"No healthy replica for '{label}'.",
                "no_healthy_replica",
                retry_after_s(self.state, pool, gateway),
            )
            return None
        target = Target(pool.name, label, timeout_s, retries, replica)
        if gateway is not None and gateway.model is not None:
            target.label, target.fallback_index = gateway.model.name, fallback_index
        return target

    def _start_attempt(self, flow: http.HTTPFlow, target: Target) -> None:
        self._send_to(flow, target.replica)
        target.probe = self.state.balancer.acquire(target.replica)
        self._connecting[(flow.client_conn.id, target.replica.address)] = flow
        self._deadlines[flow.id] = (time.monotonic() + target.timeout_s, flow)

    def _note_failure(
        self, flow: http.HTTPFlow, target: Target, status: int, connected: bool
    ) -> None:
        """Tell the balancer how the attempt on target.replica failed, once per attempt."""
        if target.failure_noted:
            return
        target.failure_noted = True
        gateway = GATEWAY in flow.metadata
        # A route's slow or reset answer says nothing about the replica's health (the request
        # may be the slow one); a gateway model's replica that does so is in trouble.
        down = not connected or (gateway and (status == 0 or status in MARKS_DOWN))
        balancer = self.state.balancer
        if down:
            pool = self.state.config.pools.get(target.pool)
            balancer.mark_down(target.replica, pool.down_for_s if pool else 5.0, target.probe)
        elif target.probe:
            balancer.probe_done(target.replica, True if status else None)
        target.probe = False

    def _next_replica(self, target: Target) -> Replica | None:
        """Return another replica of the target's pool, while retries are left."""
        if target.replica.id not in target.tried:
            target.tried.append(target.replica.id)
        pool = self.state.config.pools.get(target.pool)
        if pool is None or len(target.tried) > target.retries:
            return None
        return self.state.balancer.choose(pool, exclude=target.tried)

    def _next_fallback(
        self, flow: http.HTTPFlow, gateway: GatewayRequest, target: Target
    ) -> Replica | None:
        """Move the target to the next usable fallback model; return its replica."""
        found = first_fallback(self.state, flow, gateway, target.fallback_index)
        if found is None:
            return None
        target.fallback_index, pool, replica = found
        assert gateway.model is not None
        target.pool, target.label, target.tried = pool.name, gateway.model.name, []
        return replica

    def _move(self, flow: http.HTTPFlow, target: Target, replica: Replica) -> None:
        """Point the flow, whose last attempt failed, at another replica."""
        self.state.balancer.release(target.replica)
        key = (flow.client_conn.id, target.replica.address)
        if self._connecting.get(key) is flow:
            del self._connecting[key]
        target.replica = replica
        target.timed_out = target.failure_noted = False
        target.attempts += 1
        self._start_attempt(flow, target)

    @staticmethod
    def _answered(flow: http.HTTPFlow, gateway: GatewayRequest | None) -> None:
        """Mark the flow's final answer as a fallback's, when it is."""
        if flow.response is not None and gateway is not None and gateway.fallback_from:
            flow.response.headers[FALLBACK_HEADER] = gateway.fallback_from

    @staticmethod
    def _forward_headers(flow: http.HTTPFlow) -> None:
        # One pass over the raw fields: each get or set of mitmproxy's Headers walks and
        # case-folds them all again (four of those cost more than the rest of this addon).
        kept: list[tuple[bytes, bytes]] = []
        prior: list[bytes] = []
        host = b""
        for field in flow.request.headers.fields:
            name = field[0].lower()
            if name == b"x-forwarded-for":
                prior.append(field[1])
            elif name not in FORWARDED_BY_PROXY:
                host = field[1] if name == b"host" else host
                kept.append(field)
        client = flow.client_conn
        prior.append(client.peername[0].encode() if client.peername else b"")
        kept += [
            (b"x-forwarded-for", b", ".join(prior)),
            (b"x-forwarded-proto", b"https" if client.tls_established else b"http"),
            (b"x-forwarded-host", host),
        ]
        flow.request.headers.fields = tuple(kept)

    @staticmethod
    def _send_to(flow: http.HTTPFlow, replica: Replica) -> None:
        # Setting request.host/.port would rewrite the Host header on each assignment;
        # set the fields, then the header once.
        request = flow.request
        data = request.data
        data.scheme, data.host, data.port = replica.scheme.encode(), replica.host, replica.port
        if request.is_http2 or request.is_http3:
            request.host_header = replica.hostport
            return
        # HTTP/1: the Host field replaced in the raw fields (the header setter walks them twice).
        host = replica.hostport.encode()
        fields = [field for field in data.headers.fields if field[0].lower() != b"host"]
        data.headers.fields = ((b"Host", host), *fields)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            late = [flow for deadline, flow in self._deadlines.values() if deadline <= now]
            for flow in late:
                del self._deadlines[flow.id]
                self._expire(flow)

    def _expire(self, flow: http.HTTPFlow) -> None:
        target: Target | None = flow.metadata.get(TARGET)
        if target is None or flow.response is not None or not flow.live:
            return
        target.timed_out = True
        logger.warning("%s: %s timed out", target.label, target.replica.id)
        abort = flow.metadata.get(ABORT)
        if abort is not None:  # a flow of the lean path
            abort()
            return
        handler = ctx.master.addons.get("proxyserver").connections.get(flow.client_conn.id)
        if handler is not None and flow.server_conn in handler.transports:
            handler.close_connection(flow.server_conn)

    def _finish(self, flow: http.HTTPFlow) -> None:
        self._deadlines.pop(flow.id, None)
        target: Target | None = flow.metadata.get(TARGET)
        if target is None or flow.metadata.get(RELEASED):
            return
        flow.metadata[RELEASED] = True
        self.state.balancer.release(target.replica)
        if target.probe:  # it ended without an answer that told anything (the client left)
            target.probe = False
            self.state.balancer.probe_done(target.replica, None)
        key = (flow.client_conn.id, target.replica.address)
        if self._connecting.get(key) is flow:
            del self._connecting[key]


def upstream_failure(flow: http.HTTPFlow, target: Target, connected: bool) -> http.Response:
    """Answer a request whose upstream timed out (504), refused or dropped it (502)."""
    what = f"The model '{target.label}'" if GATEWAY in flow.metadata else f"'{target.label}'"
    if target.timed_out:
        status, code, message = (
            504,
            "upstream_timeout",
            f"did not answer within {target.timeout_s:g} s",
        )
    elif not connected:
        status, code, message = 502, "upstream_unreachable", "could not be reached"
    else:
        status, code, message = 502, "upstream_disconnected", "closed the connection unanswered"
    flow.metadata[FAILURE] = code
    return error_response(status, f"{what} {message}.", code)


async def reachable(replica: Replica, timeout_s: float) -> bool:
    """Tell whether the replica accepts a TCP connection."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(replica.host, replica.port), timeout_s
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
