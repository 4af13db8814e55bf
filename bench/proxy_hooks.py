"""Where a gateway request's CPU goes inside spectr_proxy's own addons (no sockets, no Redis).

  .venv/bin/python bench/proxy_hooks.py [--requests 20000]

Runs each addon hook a gateway request passes through on test flows and prints CPU
microseconds per request per hook, next to the cost of building the test flow itself (the
baseline measured in the same run). Redis and mitmproxy's own protocol work are not included:
bench/proxy_latency.py measures those end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.addons.access_log import AccessLog
from proxy.addons.auth import GatewayAuth
from proxy.addons.metrics import Metrics
from proxy.addons.models import GatewayModels
from proxy.addons.replies import GatewayReplies
from proxy.addons.routing import Routing
from proxy.addons.usage import Usage
from proxy.config import parse_config
from proxy.state import ProxyState
from proxy.usage import UsageRecord, UsageSink

SECRET = "sk-spectr-hooks"
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}]}).encode()
RESPONSE = json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})


class DiscardSink:
    """Stands in for the Redis writer: keeps nothing, so only the hook's own work is timed."""

    def put(self, record: UsageRecord) -> None:
        pass

    def start(self) -> None:
        pass


def make_state() -> ProxyState:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    return ProxyState(parse_config({
        "version": 1,
        "models": [{"name": "bench", "replicas": [{"url": "http://127.0.0.1:9"}]}],
        "keys": [{"id": "bench", "sha256": digest, "rpm": 1000}],
    }))  # fmt: skip


def make_flow() -> http.HTTPFlow:
    request = tutils.treq(
        method=b"POST", path=b"/v1/chat/completions", content=BODY,
        headers=[(b"host", b"llm"), (b"authorization", f"Bearer {SECRET}".encode()),
                 (b"content-type", b"application/json")],
    )  # fmt: skip
    return tflow.tflow(req=request)


def with_response(f: http.HTTPFlow) -> http.HTTPFlow:
    f.response = tutils.tresp(content=RESPONSE.encode())
    return f


def cpu_us(step: Callable[[], object], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        step()
    return (time.process_time() - start) * 1e6 / count


def hook_cpu_us(hook: Callable[[http.HTTPFlow], object], flows: list[http.HTTPFlow]) -> float:
    """Run a hook once on each flow; return CPU microseconds per call."""
    remaining: Iterator[http.HTTPFlow] = iter(flows)
    return cpu_us(lambda: hook(next(remaining)), len(flows))


async def measure(count: int) -> dict[str, float]:
    state = make_state()
    auth, models, routing = GatewayAuth(state), GatewayModels(state), Routing(state)
    usage = Usage(cast(UsageSink, DiscardSink()))
    metrics, access, replies = Metrics(state, "127.0.0.1", None), AccessLog(None), GatewayReplies()
    figures: dict[str, float] = {}
    with taddons.context(auth, models, routing, replies, usage, metrics, access):
        figures["(baseline) build test flow"] = cpu_us(make_flow, count)
        flows = [make_flow() for _ in range(count)]
        figures["GatewayAuth.request"] = hook_cpu_us(auth.request, flows)
        figures["GatewayModels.request"] = hook_cpu_us(models.request, flows)
        figures["Routing.request"] = hook_cpu_us(routing.request, flows)
        flows = [with_response(f) for f in flows]
        figures["Routing.response"] = hook_cpu_us(routing.response, flows)
        figures["GatewayReplies.response"] = hook_cpu_us(replies.response, flows)
        figures["Usage.response"] = hook_cpu_us(usage.response, flows)
        figures["Metrics.response"] = hook_cpu_us(metrics.response, flows)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.requests))
    baseline = figures.pop("(baseline) build test flow")
    total = sum(figures.values())
    print(f"{'hook':<24} {'CPU us/request':>15}")
    for name, value in figures.items():
        print(f"{name:<24} {value:>15.1f}")
    print(f"{'all gateway hooks':<24} {total:>15.1f}")
    print(
        f"{'baseline: build a flow':<24} {baseline:>15.1f}  (ratio hooks/baseline {total / baseline:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
