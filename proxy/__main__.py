"""`spectr-proxy`: run the reverse proxy and LLM gateway."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from proxy.addons.auth import DEFAULT_MAX_BODY_MB
from proxy.app import ProxySettings, serve
from proxy.config import ConfigError
from proxy.spool import SpoolLocked
from proxy.workers import run_workers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line; each option also has a SPECTR_PROXY_* environment variable."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="spectr-proxy", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config-file",
        default=env("SPECTR_PROXY_CONFIG_FILE"),
        help="JSON or YAML config document, re-read when it changes",
    )
    source.add_argument(
        "--portal-url",
        default=env("SPECTR_PROXY_PORTAL_URL"),
        help="portal base URL; the config comes from GET /api/v1/proxy/config",
    )
    parser.add_argument(
        "--portal-token-file",
        default=env("SPECTR_PROXY_PORTAL_TOKEN_FILE"),
        help="file holding the portal service token (or set SPECTR_PROXY_PORTAL_TOKEN)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=env("SPECTR_PROXY_POLL_INTERVAL", "5"),
        help="seconds between config polls when no notification arrives",
    )
    parser.add_argument("--listen-host", default=env("SPECTR_PROXY_LISTEN_HOST", "0.0.0.0"))
    parser.add_argument("--listen-port", type=int, default=env("SPECTR_PROXY_LISTEN_PORT", "8080"))
    parser.add_argument("--admin-host", default=env("SPECTR_PROXY_ADMIN_HOST", "127.0.0.1"))
    parser.add_argument(
        "--admin-port",
        type=int,
        default=env("SPECTR_PROXY_ADMIN_PORT", "9180"),
        help="/metrics port; 0 turns it off; worker i uses admin-port + i",
    )
    parser.add_argument(
        "--redis-url", default=env("SPECTR_PROXY_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--redis-prefix",
        default=env("SPECTR_PROXY_REDIS_PREFIX", "spectr:"),
        help="prefix of every Redis key, stream and channel",
    )
    parser.add_argument(
        "--confdir",
        default=env("SPECTR_PROXY_CONFDIR"),
        help="mitmproxy's state folder (CA, certificates); a temporary one if unset",
    )
    parser.add_argument(
        "--access-log",
        default=env("SPECTR_PROXY_ACCESS_LOG"),
        help="file for JSON access log lines, '-' for stdout; off if unset",
    )
    parser.add_argument(
        "--upstream-insecure",
        action="store_true",
        help="do not verify TLS certificates of https replicas",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=env("SPECTR_PROXY_WORKERS", "1"),
        help="proxy processes sharing the port (SO_REUSEPORT)",
    )
    parser.add_argument(
        "--usage-queue",
        type=int,
        default=env("SPECTR_PROXY_USAGE_QUEUE", "10000"),
        help="usage records held in memory before they spill to the spool file",
    )
    parser.add_argument(
        "--usage-spool",
        default=env("SPECTR_PROXY_USAGE_SPOOL"),
        help="file where usage records wait while Redis is away (default <confdir>/usage-spool.jsonl)",
    )
    parser.add_argument(
        "--usage-spool-max-mb",
        type=float,
        default=env("SPECTR_PROXY_USAGE_SPOOL_MAX_MB", "1024"),
        help="size of the spool file above which new usage records are dropped (and counted)",
    )
    parser.add_argument(
        "--gateway-path",
        choices=["lean", "mitmproxy"],
        default=env("SPECTR_PROXY_GATEWAY_PATH", "lean"),
        help="who serves gateway requests: the lean HTTP/1.1 path (mitmproxy serves the rest) "
        "or mitmproxy, like everything else",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=env("SPECTR_PROXY_MAX_BODY_MB", str(DEFAULT_MAX_BODY_MB)),
        help="largest body of a gateway request (413 above it; read only after the key check)",
    )
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default=env("SPECTR_PROXY_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if not args.config_file and not args.portal_url:
        parser.error("give --config-file or --portal-url")
    return args


def settings_from(args: argparse.Namespace) -> ProxySettings:
    """Turn parsed arguments into the proxy's settings."""
    token = os.environ.get("SPECTR_PROXY_PORTAL_TOKEN", "")
    if args.portal_token_file:
        token = Path(args.portal_token_file).read_text().strip()
    confdir = Path(args.confdir or tempfile.mkdtemp(prefix="spectr-proxy-"))
    spool = Path(args.usage_spool) if args.usage_spool else confdir / "usage-spool.jsonl"
    if args.worker_index is not None:  # workers share the options, not the file
        spool = spool.with_name(f"{spool.stem}-{args.worker_index}{spool.suffix}")
    return ProxySettings(
        config_file=Path(args.config_file) if args.config_file else None,
        portal_url=args.portal_url,
        portal_token=token,
        poll_interval_s=args.poll_interval,
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        admin_host=args.admin_host,
        admin_port=args.admin_port or None,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
        confdir=confdir,
        access_log=args.access_log,
        upstream_insecure=args.upstream_insecure,
        reuse_port=args.reuse_port,
        usage_spool=spool,
        usage_queue=args.usage_queue,
        usage_spool_max_bytes=int(args.usage_spool_max_mb * 1024 * 1024),
        gateway_path=args.gateway_path,
        max_body_mb=args.max_body_mb,
    )


def main(argv: list[str] | None = None) -> int:
    """Run spectr-proxy until SIGINT or SIGTERM."""
    args = parse_args(argv)
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.workers > 1:
        return run_workers(sys.argv[1:] if argv is None else argv, args.workers, args.admin_port)
    try:
        settings = settings_from(args)
    except OSError as exc:
        print(f"spectr-proxy: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.reuse_port)) as runner:
            runner.run(serve(settings))
    except ConfigError as exc:
        print(f"spectr-proxy: invalid config: {exc}", file=sys.stderr)
        return 2
    except (SpoolLocked, OSError) as exc:  # OSError: the listen address is taken
        print(f"spectr-proxy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def loop_factory(reuse_port: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a loop factory; with reuse_port every listening socket sets SO_REUSEPORT."""
    if not reuse_port:
        return asyncio.new_event_loop

    class ReusePortLoop(asyncio.SelectorEventLoop):
        async def create_server(self, *args, **kwargs):  # type: ignore[override]
            kwargs.setdefault("reuse_port", True)
            return await super().create_server(*args, **kwargs)

    return ReusePortLoop


if __name__ == "__main__":
    raise SystemExit(main())
