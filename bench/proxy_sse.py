"""Proxy CPU for one long SSE stream, by framing: LF (the baseline) against CRLF.

One run, bounded: `.venv/bin/python bench/proxy_sse.py [--chunks 8000] [--rounds 3]
[--gateway-path lean|mitmproxy]`

Each case streams one completion of `--chunks` chunks from the stand-in model server through
spectr-proxy's gateway (key check, usage tap) while a second client sends small requests one
after another, and reports the proxy's CPU seconds for the stream, the longest wait of those
small requests (how long the stream blocked others) and the ratio to the LF case of the same
round. Cases: the client asks for usage itself (chunks pass through untouched), or it does not
(the proxy asks the model and strips the usage chunk, holding each event until complete).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench_support import (
    Service,
    free_port,
    http_request,
    read_chunked,
    start_proxy,
    start_upstream,
    tear_down,
    tree_cpu_seconds,
)

SECRET = "sk-spectr-bench-" + uuid.uuid4().hex
SMALL = json.dumps({"model": "bench", "messages": [], "max_tokens": 1}).encode()
CASES = [("lf", True), ("crlf", True), ("lf", False), ("crlf", False)]


def proxy_config(upstream_url: str) -> dict:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    return {
        "version": 1,
        "gateway": {"hosts": ["bench"]},
        "models": [{"name": "bench", "replicas": [{"url": upstream_url}]}],
        "keys": [{"id": "bench", "sha256": digest, "tpm": 1_000_000_000}],
    }


def stream_body(chunks: int, framing: str, client_asks_usage: bool) -> bytes:
    body: dict = {"model": "bench", "messages": [], "max_tokens": chunks, "stream": True,
                  "x_chunk_delay_s": 0, "x_framing": framing}  # fmt: skip
    if client_asks_usage:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


async def one_stream(proxy: Service, body: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (SECRET.encode(), len(body), body)
    )
    await reader.readuntil(b"\r\n\r\n")
    data = await read_chunked(reader)
    writer.close()
    return data


async def others_while(proxy: Service, task: asyncio.Task) -> list[float]:
    """Send small requests one after another until `task` ends; return each one's ms."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    waits = []
    while not task.done():
        start = time.perf_counter()
        await http_request(reader, writer, "bench", SMALL, SECRET)
        waits.append((time.perf_counter() - start) * 1000)
    writer.close()
    return waits


async def run_case(proxy: Service, body: bytes) -> tuple[float, float, list[float], bytes]:
    """Return (proxy CPU s, wall s, the other requests' waits in ms, stream body)."""
    cpu_before, start = tree_cpu_seconds(proxy.proc.pid), time.perf_counter()
    stream = asyncio.ensure_future(one_stream(proxy, body))
    waits = await others_while(proxy, stream)
    data = await stream
    wall = time.perf_counter() - start
    return tree_cpu_seconds(proxy.proc.pid) - cpu_before, wall, waits, data


async def small_request_cpu(proxy: Service, count: int = 300) -> float:
    """CPU seconds of the proxy per small request, measured alone."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    before = tree_cpu_seconds(proxy.proc.pid)
    for _ in range(count):
        await http_request(reader, writer, "bench", SMALL, SECRET)
    writer.close()
    return (tree_cpu_seconds(proxy.proc.pid) - before) / count


def measure(proxy: Service, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    per_small = asyncio.run(small_request_cpu(proxy))
    results: dict[str, dict[str, list[float]]] = {}
    for round_no in range(1, args.rounds + 1):
        for framing, asks in CASES:
            name = f"{framing}, client {'asks' if asks else 'does not ask'} usage"
            body = stream_body(args.chunks, framing, asks)
            cpu, wall, waits, data = asyncio.run(run_case(proxy, body))
            events = data.count(b"data:")
            assert events == args.chunks + (2 if asks else 1), (name, events)
            row = results.setdefault(name, {"cpu": [], "wall": [], "longest": [], "others": []})
            # The small requests cost CPU too: take off their share, at the rate measured alone.
            row["cpu"].append(max(0.0, cpu - len(waits) * per_small))
            row["wall"].append(wall)
            row["longest"].append(max(waits, default=0.0))
            row["others"].append(len(waits))
        print(f"  round {round_no}/{args.rounds} measured", file=sys.stderr)
    return {
        name: {key: statistics.median(values) for key, values in row.items()}
        for name, row in results.items()
    }


def report(results: dict[str, dict[str, float]]) -> None:
    print(f"\n{'case':<34} {'proxy CPU s':>11} {'wall s':>7} {'other requests':>15} "
          f"{'longest other ms':>17} {'CPU vs LF':>10}")  # fmt: skip
    for name, r in results.items():
        baseline = results[name.replace("crlf", "lf")]["cpu"]
        print(f"{name:<34} {r['cpu']:>11.3f} {r['wall']:>7.2f} {r['others']:>15.0f} "
              f"{r['longest']:>17.1f} {r['cpu'] / baseline:>10.2f}")  # fmt: skip
    print(json.dumps({"results": results}))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=8000, help="chunks in the stream")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--gateway-path", choices=["lean", "mitmproxy"], default="lean", help="spectr-proxy's"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spectr-bench-sse-"))
    prefix = f"spectr-bench-{uuid.uuid4().hex[:8]}:"
    started: list[Service] = []
    try:
        upstream = start_upstream(free_port())
        started.append(upstream)
        config_file = workdir / "proxy.json"
        config_file.write_text(json.dumps(proxy_config(upstream.url)))
        proxy = start_proxy(workdir, config_file, args.redis_url, prefix, 1, args.gateway_path)
        started.append(proxy)
        load_before = os.getloadavg()[0]
        results = measure(proxy, args)
        print(f"\n{args.chunks} chunks a stream; load average (1 min) before/after: "
              f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
        report(results)
    finally:
        tear_down(started, args.redis_url, prefix, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
