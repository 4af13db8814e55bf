"""Added latency and throughput of spectr_proxy's gateway path, with nginx as the reference proxy.

One run, bounded in count and time (the paths take turns in 4 rounds):
  .venv/bin/python bench/proxy_latency.py [--requests 2000] [--seconds 5] [--workers 1]
                                          [--peers litellm]

Paths measured against the same stand-in model server (proxy/tests/llm_standin.py):
  direct        client -> upstream
  nginx         client -> nginx (Debian package, keepalive upstream) -> upstream
  route         client -> spectr-proxy, plain route (mitmproxy + routing, no gateway) -> upstream
  gateway-mitm  client -> spectr-proxy --gateway-path mitmproxy (before: mitmproxy serves the
                gateway; key check, Redis limit check, usage record) -> upstream
  gateway-lean  client -> spectr-proxy (after, the default: the lean path serves the gateway,
                same addons: key check, Redis limit check, usage record) -> upstream
  gateway-tls-* with --tls: the gateway over TLS (SNI "bench", a self-signed certificate),
                ended by mitmproxy (before) or by the lean path (after, proxy/lean/tls.py)
  litellm       client -> LiteLLM's proxy (--peers litellm; PyPI's litellm[proxy] in a venv of
                its own under ~/.cache/spectr-bench, master key only, no database) -> upstream
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench_support import (
    Service,
    free_port,
    http_request,
    percentile,
    run_concurrent,
    start_litellm,
    start_nginx,
    start_proxy,
    start_upstream,
    tear_down,
    time_to_first_event,
    tree_cpu_seconds,
)

from proxy.tests.tls_support import self_signed

SECRET = "sk-spectr-bench-" + uuid.uuid4().hex
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": 2}).encode()  # fmt: skip
STREAM_BODY = json.dumps({"model": "bench", "messages": [], "max_tokens": 4, "stream": True,
                          "x_chunk_delay_s": 0}).encode()  # fmt: skip


def proxy_config(upstream_url: str) -> dict:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    return {
        "version": 1,
        "gateway": {"hosts": ["bench"]},
        "models": [{"name": "bench", "replicas": [{"url": upstream_url}]}],
        # The same upstream as a plain route: mitmproxy + routing without the gateway's work.
        "pools": [{"name": "plain", "replicas": [{"url": upstream_url}]}],
        "routes": [{"name": "plain", "hosts": ["plain"], "pool": "plain"}],
        # Limits high enough never to refuse, so every request pays the Redis check.
        "keys": [{"id": "bench", "sha256": digest, "rpm": 10_000_000, "tpm": 1_000_000_000}],
    }


async def latency(service: Service, count: int, body: bytes) -> list[float]:
    """Send `count` requests one after another on one keep-alive connection; return ms each."""
    reader, writer = await service.connect()
    samples = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            status = await http_request(reader, writer, service.host, body, SECRET)
            samples.append((time.perf_counter() - start) * 1000)
            assert status == 200, status
    finally:
        writer.close()
    return samples


ROUNDS = 4


def measure(services: dict[str, Service], args: argparse.Namespace) -> dict[str, dict]:
    """Measure every path in ROUNDS interleaved rounds, so load drift on a shared machine
    falls on all paths alike."""
    samples: dict[str, list[float]] = {name: [] for name in services}
    ttfb: dict[str, list[float]] = {name: [] for name in services}
    done: dict[str, float] = dict.fromkeys(services, 0.0)
    # CPU seconds during the 16-client runs: the path's process, the upstream, this client.
    cpu: dict[str, float] = dict.fromkeys(services, 0.0)
    upstream_cpu: dict[str, float] = dict.fromkeys(services, 0.0)
    client_cpu: dict[str, float] = dict.fromkeys(services, 0.0)
    upstream_pid = services["direct"].proc.pid
    for service in services.values():
        asyncio.run(latency(service, min(200, args.requests), BODY))  # warm-up
    for round_no in range(1, ROUNDS + 1):
        for name, service in services.items():
            samples[name] += asyncio.run(latency(service, args.requests // ROUNDS, BODY))
            cpu_before = tree_cpu_seconds(service.proc.pid)
            upstream_before, client_before = tree_cpu_seconds(upstream_pid), time.process_time()
            rps = asyncio.run(run_concurrent(service, 16, args.seconds / ROUNDS, BODY, SECRET))
            # CPU per request is what the proxy costs, whatever else the shared machine runs.
            cpu[name] += tree_cpu_seconds(service.proc.pid) - cpu_before
            upstream_cpu[name] += tree_cpu_seconds(upstream_pid) - upstream_before
            client_cpu[name] += time.process_time() - client_before
            done[name] += rps * args.seconds / ROUNDS
            ttfb[name] += asyncio.run(
                time_to_first_event(service, 100 // ROUNDS, STREAM_BODY, SECRET)
            )
        print(f"  round {round_no}/{ROUNDS} measured", file=sys.stderr)
    return {
        name: {
            "median": statistics.median(samples[name]),
            "p99": percentile(samples[name], 99),
            "rps": done[name] / args.seconds,
            "ttfb": statistics.median(ttfb[name]),
            "cpu_us": cpu[name] * 1e6 / done[name],
            "upstream_cpu_us": upstream_cpu[name] * 1e6 / done[name],
            "client_cpu_us": client_cpu[name] * 1e6 / done[name],
        }
        for name in services
    }


def ceiling(path: dict) -> str:
    """Say what the CPU of one request on the lean path allows on this machine's cores."""
    total = path["cpu_us"] + path["upstream_cpu_us"] + path["client_cpu_us"]
    cores = os.cpu_count() or 1
    return (
        f"CPU of one lean gateway request at 16 clients: proxy {path['cpu_us']:.0f} us, "
        f"stand-in upstream {path['upstream_cpu_us']:.0f} us, bench client "
        f"{path['client_cpu_us']:.0f} us = {total:.0f} us on {cores} shared cores: at most "
        f"{cores * 1e6 / total:.0f} req/s with the cores to themselves; the proxy alone, on "
        f"one core: {1e6 / path['cpu_us']:.0f} req/s"
    )


# The goals for the gateway (keys, limits and usage on), on this machine.
GOALS = {"added median ms": 0.5, "added p99 ms": 3.0, "req/s at 16 clients": 2000}


def report(results: dict[str, dict]) -> None:
    direct, nginx = results["direct"], results["nginx"]
    print("\npath             median ms  p99 ms  added median  added p99  req/s (16 clients)  "
          "vs direct  vs nginx  stream TTFB ms  added TTFB  CPU us/req")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:<16} {r['median']:>9.3f} {r['p99']:>7.3f}"
            f" {r['median'] - direct['median']:>13.3f} {r['p99'] - direct['p99']:>10.3f}"
            f" {r['rps']:>19.0f} {r['rps'] / direct['rps']:>10.2f} {r['rps'] / nginx['rps']:>9.2f}"
            f" {r['ttfb']:>15.3f} {r['ttfb'] - direct['ttfb']:>11.3f} {r['cpu_us']:>11.0f}"
        )
    before, after = results["gateway-mitm"], results["gateway-lean"]
    print(
        f"\ngateway, lean path against mitmproxy's: median {before['median']:.3f} -> "
        f"{after['median']:.3f} ms, p99 {before['p99']:.2f} -> {after['p99']:.2f} ms, "
        f"{before['rps']:.0f} -> {after['rps']:.0f} req/s (x{after['rps'] / before['rps']:.1f}), "
        f"CPU {before['cpu_us']:.0f} -> {after['cpu_us']:.0f} us/req"
    )
    print(ceiling(after))
    figures = {
        "added median ms": after["median"] - direct["median"],
        "added p99 ms": after["p99"] - direct["p99"],
        "req/s at 16 clients": after["rps"],
    }
    for goal, limit in GOALS.items():
        met = figures[goal] >= limit if goal.startswith("req/s") else figures[goal] <= limit
        sign = ">=" if goal.startswith("req/s") else "<="
        print(f"goal {goal} {sign} {limit:g}: {figures[goal]:.3f} ({'met' if met else 'NOT met'})")
    print(json.dumps({"results": results}, indent=None))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per path")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput run per path")
    parser.add_argument(
        "--workers", type=int, default=1, help="spectr-proxy processes (SO_REUSEPORT)"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="also the gateway over TLS: ended by mitmproxy (before) and by the lean path (after)",
    )
    parser.add_argument(
        "--peers",
        default="",
        help="peer gateways measured in the same run: 'litellm' (installed from PyPI on first use)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="spectr-bench-proxy-"))
    prefix = f"spectr-bench-{uuid.uuid4().hex[:8]}:"
    started: list[Service] = []
    try:
        upstream = start_upstream(free_port())
        started.append(upstream)
        config_file = workdir / "proxy.json"
        config = proxy_config(upstream.url)
        if args.tls:
            cert, key = self_signed("bench", workdir)
            config["gateway"]["tls"] = {"cert_file": str(cert), "key_file": str(key)}
        config_file.write_text(json.dumps(config))
        nginx = start_nginx(workdir, upstream.port)
        started.append(nginx)
        before = start_proxy(
            workdir, config_file, args.redis_url, prefix, args.workers, gateway_path="mitmproxy"
        )
        started.append(before)
        after = start_proxy(workdir, config_file, args.redis_url, prefix, args.workers)
        started.append(after)
        load_before = os.getloadavg()[0]
        route = Service("route", before.port, before.proc, host="plain")
        paths = {"direct": upstream, "nginx": nginx, "route": route, "gateway-mitm": before,
                 "gateway-lean": after}  # fmt: skip
        if args.tls:
            client_tls = ssl.create_default_context(cafile=str(cert))
            paths["gateway-tls-mitm"] = Service(
                "tls-mitm", before.port, before.proc, tls=client_tls
            )
            paths["gateway-tls-lean"] = Service("tls-lean", after.port, after.proc, tls=client_tls)
        if "litellm" in args.peers.split(","):
            paths["litellm"] = start_litellm(workdir, upstream.port, SECRET)
            started.append(paths["litellm"])
        results = measure(paths, args)
        print(f"\nload average (1 min) before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}"
              f" on {os.cpu_count()} CPUs, shared with other work")  # fmt: skip
        usage = redis.Redis.from_url(args.redis_url).xlen(f"{prefix}usage")
        print(f"\nusage records written by the gateway during the run: {usage}")
        report(results)
    finally:
        tear_down(started, args.redis_url, prefix, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
