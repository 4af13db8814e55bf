"""Assemble spectr_proxy: mitmproxy in reverse mode with Spectr's addons, in dependency order."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mitmproxy import options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from redis.asyncio import Redis

from proxy import error_hook
from proxy.addons.access_log import AccessLog
from proxy.addons.auth import DEFAULT_MAX_BODY_MB, GatewayAuth
from proxy.addons.config_loader import ConfigLoader
from proxy.addons.health import HealthChecks
from proxy.addons.limits import Limits
from proxy.addons.metrics import Metrics
from proxy.addons.models import GatewayModels
from proxy.addons.replies import GatewayReplies
from proxy.addons.request_id import RequestIds
from proxy.addons.routing import Routing
from proxy.addons.tls import TlsTermination
from proxy.addons.usage import Usage
from proxy.config import parse_config
from proxy.lean.flows import skip_message_typechecks
from proxy.lean.server import LeanGateway
from proxy.ratelimit import RateLimiter
from proxy.resp import RespClient
from proxy.sources import ConfigSource, FileSource, PortalSource
from proxy.spool import UsageQueue
from proxy.state import ProxyState
from proxy.usage import UsageSink

# Nothing is ever connected to this: the routing addon sets each request's upstream.
UNROUTED = "reverse:http://127.0.0.1:9"


@dataclass(frozen=True)
class ProxySettings:
    config_file: Path | None
    portal_url: str | None
    portal_token: str
    poll_interval_s: float
    listen_host: str
    listen_port: int
    admin_host: str
    admin_port: int | None
    redis_url: str
    redis_prefix: str
    confdir: Path
    access_log: str | None = None
    upstream_insecure: bool = False
    reuse_port: bool = False
    usage_spool: Path | None = None  # default: <confdir>/usage-spool.jsonl
    usage_queue: int = 10_000
    usage_spool_max_bytes: int = 1 << 30
    # "lean": gateway requests are served by proxy/lean (the listening socket is its), every other
    # connection by mitmproxy; "mitmproxy": mitmproxy listens and serves everything.
    gateway_path: str = "lean"
    max_body_mb: float = DEFAULT_MAX_BODY_MB  # a gateway request's body, at most


def config_source(settings: ProxySettings, redis: Redis) -> ConfigSource:
    """Return the file or portal source the settings name."""
    if settings.config_file is not None:
        return FileSource(settings.config_file)
    assert settings.portal_url
    source = PortalSource(
        settings.portal_url,
        settings.portal_token,
        redis,
        channel=f"{settings.redis_prefix}proxy:config",
        poll_interval_s=settings.poll_interval_s,
    )
    if settings.admin_port:
        # Tells the portal where this proxy's /metrics answers (Prometheus service discovery).
        source.headers["x-spectr-proxy-metrics"] = f"{settings.admin_host}:{settings.admin_port}"
    return source


def mitmproxy_options(settings: ProxySettings) -> dict[str, object]:
    """Return mitmproxy's options for a reverse proxy that routes every request itself."""
    return {
        "mode": [UNROUTED],
        "listen_host": settings.listen_host,
        "listen_port": settings.listen_port,
        "confdir": str(settings.confdir),
        "keep_host_header": True,
        "connection_strategy": "lazy",
        "ssl_insecure": settings.upstream_insecure,
    }


def open_access_log(target: str | None) -> TextIO | None:
    """Open the access log destination ('-' is stdout)."""
    if not target:
        return None
    return sys.stdout if target == "-" else open(target, "a", buffering=1)


def lean_master() -> Master:
    """Return a mitmproxy master with only the built-in addons a reverse proxy needs.

    DumpMaster loads ~30 addons (replay, map-local, HAR export, ...) and every hook of every
    request walks all of them; with these five the same request costs far less. It also leaves
    out `block`, which would refuse clients from public addresses.
    """
    error_hook.install()
    skip_message_typechecks()
    master = Master(options.Options(), with_termlog=False)
    master.addons.add(
        core.Core(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
        errorcheck.ErrorCheck(),
    )
    return master


async def serve(settings: ProxySettings) -> None:
    """Load the config, then serve until the master shuts down."""
    redis = Redis.from_url(settings.redis_url)
    state = ProxyState()
    source = config_source(settings, redis)
    loader = ConfigLoader(state, source)
    document = await source.load_now()
    if settings.config_file is not None and document is not None:
        parse_config(document)  # a bad file stops the start, with the reason
    if document is not None:
        loader.apply(document)
    fast_redis = RespClient(settings.redis_url)
    limiter = RateLimiter(fast_redis, settings.redis_prefix)
    queue = UsageQueue(
        settings.usage_spool or settings.confdir / "usage-spool.jsonl",
        settings.usage_queue,
        settings.usage_spool_max_bytes,
    )
    sink = UsageSink(fast_redis, settings.redis_prefix, limiter, queue)
    master = lean_master()
    addons: list[object] = [
        loader,
        RequestIds(),
        HealthChecks(state),
        TlsTermination(state, settings.confdir / "routes"),
        GatewayAuth(state, settings.max_body_mb),
        GatewayModels(state),
        Limits(limiter),
        Routing(state),
        # After Routing (which streams event streams) and before Usage, Metrics and AccessLog,
        # so they see the answer the client gets.
        GatewayReplies(),
        Usage(sink),
        Metrics(state, settings.admin_host, settings.admin_port, sink.queue),
        AccessLog(open_access_log(settings.access_log)),
    ]
    options = mitmproxy_options(settings)
    if settings.gateway_path == "lean":
        front = LeanGateway(
            state,
            list(addons),
            UNROUTED,
            settings.listen_host,
            settings.listen_port,
            settings.upstream_insecure,
        )
        await front.listen()
        options["server"] = False  # the lean gateway listens and hands mitmproxy the rest
        addons.append(front)
    # Options are declared by the built-in addons, so they can only be set once those are loaded.
    master.options.update(**options)
    master.addons.add(*addons)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, master.shutdown)
    try:
        await master.run()
    finally:
        await fast_redis.close()
        await redis.aclose()
