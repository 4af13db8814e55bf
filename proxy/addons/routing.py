"""Routing: host + path prefix (or the gateway's model) -> pool -> replica, with failover."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from mitmproxy import ctx, http
from mitmproxy.proxy import server_hooks

from proxy.addons.request_id import echo
from proxy.config import Replica
from proxy.error_hook import UPSTREAM_FAILED
from proxy.errors import error_response
from proxy.state import (
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


class Routing:
    """Send each request to a healthy replica; retry refused connections on another one."""

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
        self._send_to(flow, target.replica)
        self.state.balancer.acquire(target.replica)
        self._connecting[(flow.client_conn.id, target.replica.address)] = flow
        self._deadlines[flow.id] = (time.monotonic() + target.timeout_s, flow)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        flow = self._connecting.pop((data.client.id, data.server.address), None)
        target: Target | None = flow.metadata.get(TARGET) if flow else None
        if flow is None or target is None:
            return
        while not await reachable(target.replica, min(target.timeout_s, CONNECT_TIMEOUT_S)):
            replacement = self._replace_refused(target)
            if replacement is None:
                return  # mitmproxy's own connect attempt fails and answers 502
            logger.warning("replica %s refused; retrying on %s", target.replica.id, replacement.id)
            self.state.balancer.release(target.replica)
            self.state.balancer.acquire(replacement)
            target.replica = replacement
            data.server.address = replacement.address
            data.server.sni = replacement.host
            self._send_to(flow, replacement)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._deadlines.pop(flow.id, None)
        content_type = flow.response.headers.get("content-type", "") if flow.response else ""
        if flow.response and content_type.startswith("text/event-stream"):
            flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        target: Target | None = flow.metadata.get(TARGET)
        connected = flow.server_conn.timestamp_tcp_setup is not None
        if target is not None and not connected:
            pool = self.state.config.pools.get(target.pool)
            self.state.balancer.mark_down(target.replica, pool.down_for_s if pool else 5.0)
        if target is not None and flow.response is None and UPSTREAM_FAILED in flow.metadata:
            # The error hook patch sends this instead of mitmproxy's own text/html 502.
            flow.response = upstream_failure(flow, target, connected)
            echo(flow)
        self._finish(flow)

    def _target(self, flow: http.HTTPFlow) -> Target | None:
        config = self.state.config
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
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
        if replica is None:
            flow.response = error_response(
                503, f"No healthy replica for '{label}'.", "no_healthy_replica"
            )
            return None
        return Target(pool.name, label, timeout_s, retries, replica)

    def _replace_refused(self, target: Target) -> Replica | None:
        pool = self.state.config.pools.get(target.pool)
        down_for_s = pool.down_for_s if pool else 5.0
        self.state.balancer.mark_down(target.replica, down_for_s)
        target.tried.append(target.replica.id)
        if pool is None or len(target.tried) > target.retries:
            return None
        return self.state.balancer.choose(pool, exclude=target.tried)

    @staticmethod
    def _forward_headers(flow: http.HTTPFlow) -> None:
        headers = flow.request.headers
        client_ip = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        prior = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{prior}, {client_ip}" if prior else client_ip
        headers["x-forwarded-proto"] = "https" if flow.client_conn.tls_established else "http"
        headers["x-forwarded-host"] = flow.request.host_header or ""

    @staticmethod
    def _send_to(flow: http.HTTPFlow, replica: Replica) -> None:
        # Setting request.host/.port would rewrite the Host header on each assignment;
        # set the fields, then the header once.
        data = flow.request.data
        data.scheme, data.host, data.port = replica.scheme.encode(), replica.host, replica.port
        flow.request.host_header = replica.hostport

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
