"""State shared by the addons: the current config, the balancer, and per-flow annotations."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import http

from proxy.balancer import Balancer
from proxy.config import GatewayKey, Model, Pool, ProxyConfig, Replica, Route
from proxy.endpoints import Endpoint

logger = logging.getLogger(__name__)

# Keys of flow.metadata that the addons share.
GATEWAY = "spectr.gateway"
TARGET = "spectr.target"
TOKENS = "spectr.tokens"
REQUEST_ID = "spectr.request_id"
# A callable that ends the flow's upstream attempt when Routing's timeout fires: the lean path's
# (mitmproxy's own connections are closed through its connection handler).
ABORT = "spectr.abort"

GATEWAY_PREFIX = "/v1/"


@dataclass
class GatewayRequest:
    """A request the gateway accepted: who asked for which model."""

    endpoint: str
    key: GatewayKey | None = None
    # What the endpoint table says of the path (set once the path is known to be served).
    spec: Endpoint | None = None
    model: Model | None = None
    stream: bool = False
    # The proxy, not the client, asked the model for a stream's usage chunk: keep it from the client.
    usage_added: bool = False
    # The model the client asked for, when one of its fallbacks (now `model`) answers instead.
    fallback_from: str = ""


@dataclass
class Target:
    """Where the routing addon sent a flow."""

    pool: str
    label: str
    timeout_s: float
    retries: int
    replica: Replica
    tried: list[str] = field(default_factory=list)  # replicas of this pool that failed
    timed_out: bool = False
    probe: bool = False  # the request is the half-open replica's probe
    attempts: int = 1  # upstream attempts, retries and fallbacks included
    failure_noted: bool = False  # the last attempt's failure is already in the balancer
    fallback_index: int = 0  # the model's fallbacks before this one were tried or skipped


class ProxyState:
    """Hold the configuration in force; a config swap is one reference assignment."""

    def __init__(self, config: ProxyConfig | None = None) -> None:
        self.config = config or ProxyConfig(version=0)
        self.balancer = Balancer()
        self.listeners: list[Callable[[ProxyConfig], None]] = []

    def apply(self, config: ProxyConfig) -> None:
        """Put a new configuration in force; open connections are untouched."""
        self.config = config
        for listener in self.listeners:
            listener(config)
        pools = config.pools.values()
        self.balancer.forget_except({r.id for pool in pools for r in pool.replicas})
        # A pool whose health check was removed must not keep its replicas' last failed result.
        self.balancer.clear_checks(
            {r.id for pool in pools if pool.health_check is None for r in pool.replicas}
        )
        logger.info("config version %s (etag %s) in force", config.version, config.etag)


def choose_replica(
    balancer: Balancer, pool: Pool, gateway: GatewayRequest | None
) -> Replica | None:
    """Pick a replica: balanced, or for pinned endpoints the first available one.

    Files and batches live on the replica that made them; sending all of a model's to its
    first available replica (the same one while it stays up) lets a batch find its file.
    """
    if gateway is None or gateway.spec is None or not gateway.spec.pinned:
        return balancer.choose(pool)
    now = time.monotonic()
    return next((r for r in pool.replicas if balancer.is_available(r, now)), None)


def request_host(flow: http.HTTPFlow) -> str:
    """Return the host name the client asked for, lower case and without port."""
    return host_of(flow.request.host_header or "")


def host_of(header: str) -> str:
    """Return the host name of a Host header, lower case and without port."""
    if header.startswith("["):
        return header[: header.find("]") + 1].lower()
    return header.rsplit(":", 1)[0].lower() if ":" in header else header.lower()


def host_matches(hosts: tuple[str, ...], host: str) -> bool:
    """Tell whether a host is listed (\"*\" lists every host)."""
    return "*" in hosts or host in hosts


def is_gateway_request(flow: http.HTTPFlow, config: ProxyConfig) -> bool:
    """Tell whether the LLM gateway answers this request."""
    return flow.request.path.startswith(GATEWAY_PREFIX) and host_matches(
        config.gateway.hosts, request_host(flow)
    )


def match_route(config: ProxyConfig, host: str, path: str) -> Route | None:
    """Return the most specific route for a host and path."""
    for route in config.routes:
        if host_matches(route.hosts, host) and prefix_matches(route.path_prefix, path):
            return route
    return None


def prefix_matches(prefix: str, path: str) -> bool:
    """Tell whether a path lies under a prefix, on a segment boundary (/api is not /apix)."""
    if not path.startswith(prefix):
        return False
    return prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] in "/?"
