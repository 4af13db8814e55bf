"""Prometheus metrics on a separate admin port: requests, latency, tokens, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from mitmproxy import http
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from proxy.error_hook import CLIENT_CLOSED_STATUS, answered_in_full, client_cancelled
from proxy.spool import UsageQueue
from proxy.state import GATEWAY, TARGET, TOKENS, GatewayRequest, ProxyState, Target
from proxy.usage import TokenCount

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)


class Metrics:
    """Count every request by route (or model) and key; serve /metrics on the admin port."""

    def __init__(
        self, state: ProxyState, host: str, port: int | None, usage: UsageQueue | None = None
    ) -> None:
        self.host, self.port = host, port
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "spectr_proxy_requests",
            "Requests answered",
            ["target", "model", "key", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spectr_proxy_request_duration_seconds",
            "Time from request to end of response",
            ["target", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "spectr_proxy_tokens",
            "Tokens used through the gateway",
            ["model", "key", "kind"],
            registry=self.registry,
        )
        self.errors = Counter(
            "spectr_proxy_errors",
            "Requests that failed, by reason",
            ["target", "model", "key", "reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "spectr_proxy_upstream_retries",
            "Upstream attempts beyond the first: another replica, or a fallback model",
            ["target", "model"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "spectr_proxy_fallbacks",
            "Gateway requests answered (or failed last) by a fallback of the model asked for",
            ["model", "fallback_from"],
            registry=self.registry,
        )
        version = Gauge(
            "spectr_proxy_config_version", "Config version in force", registry=self.registry
        )
        version.set_function(lambda: state.config.version)
        self.registry.register(ReplicaHealth(state))
        if usage is not None:
            self.registry.register(UsageBacklog(usage))

    def running(self) -> None:
        if self.port is not None:
            self._server, _ = start_http_server(self.port, self.host, registry=self.registry)

    def done(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def response(self, flow: http.HTTPFlow) -> None:
        self._observe(flow, flow.response.status_code if flow.response else 502, None)

    def error(self, flow: http.HTTPFlow) -> None:
        if answered_in_full(flow):  # the client closed after the last event: a success
            self.response(flow)
            return
        if client_cancelled(flow):
            self._observe(flow, CLIENT_CLOSED_STATUS, "client_cancelled")
            return
        target: Target | None = flow.metadata.get(TARGET)
        reason = "timeout" if target and target.timed_out else "upstream_error"
        self._observe(flow, flow.response.status_code if flow.response else 502, reason)

    def _observe(self, flow: http.HTTPFlow, status: int, reason: str | None) -> None:
        target_label, model, key = labels(flow)
        child = self._child
        child(self.requests, target_label, model, key, str(status)).inc()
        end = (flow.response.timestamp_end if flow.response else None) or time.time()
        child(self.latency, target_label, model).observe(end - flow.request.timestamp_start)
        if reason or status >= 400:
            child(self.errors, target_label, model, key, reason or str(status)).inc()
        target: Target | None = flow.metadata.get(TARGET)
        if target is not None and target.attempts > 1:
            child(self.retries, target_label, model).inc(target.attempts - 1)
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if gateway is not None and gateway.fallback_from:
            child(self.fallbacks, model, gateway.fallback_from).inc()
        tokens: TokenCount | None = flow.metadata.get(TOKENS)
        if tokens is not None and tokens.total:
            child(self.tokens, model, key, "prompt").inc(tokens.prompt)
            child(self.tokens, model, key, "completion").inc(tokens.completion)

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """Return the metric's child for these label values (`labels()` costs ~4 us a call)."""
        found = self._children.get((metric, values))
        if found is None:
            found = self._children[(metric, values)] = metric.labels(*values)
        return found


def labels(flow: http.HTTPFlow) -> tuple[str, str, str]:
    """Return (target, model, key id) labels of a flow; '' where it has none."""
    gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
    target: Target | None = flow.metadata.get(TARGET)
    if gateway is not None:
        model = gateway.model.name if gateway.model else ""
        return "gateway", model, gateway.key.id if gateway.key else ""
    return (target.label if target else ""), "", ""


class ReplicaHealth(Collector):
    """Report, at scrape time, whether each replica may get traffic."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "spectr_proxy_replica_up", "1 when the replica gets traffic", labels=["pool", "replica"]
        )
        now = time.monotonic()
        for pool in self.state.config.pools.values():
            for replica in pool.replicas:
                up = self.state.balancer.is_available(replica, now)
                family.add_metric([pool.name, replica.id], 1.0 if up else 0.0)
        yield family


class UsageBacklog(Collector):
    """Report usage records not yet in Redis (memory and disk) and those dropped."""

    def __init__(self, queue: UsageQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        pending = GaugeMetricFamily(
            "spectr_proxy_usage_pending",
            "Usage records waiting for Redis",
            labels=["where"],
        )
        pending.add_metric(["memory"], self.queue.memory_count)
        pending.add_metric(["disk"], self.queue.disk_count)
        yield pending
        yield CounterMetricFamily(
            "spectr_proxy_usage_dropped",
            "Usage records dropped: the spool file was full or Redis refused them",
            value=self.queue.dropped,
        )
