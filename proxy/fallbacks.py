"""Fallback models: where a gateway request goes when no replica of its model can answer."""

from __future__ import annotations

import json
import logging

from mitmproxy import http

from proxy.addons.models import request_json
from proxy.config import Model, Pool, Replica
from proxy.state import GatewayRequest, ProxyState

logger = logging.getLogger(__name__)


def first_fallback(
    state: ProxyState, flow: http.HTTPFlow, gateway: GatewayRequest, start: int
) -> tuple[int, Pool, Replica] | None:
    """Switch the request to the first fallback from `start` it may use with a replica up.

    Returns the index of the fallback after it, its pool and the replica chosen. Fallbacks come
    from the model the client asked for only (a fallback's own are not followed), so a request
    tries each model at most once. Fallbacks the key may not use are skipped.
    """
    config = state.config
    origin = config.models.get(gateway.fallback_from) if gateway.fallback_from else gateway.model
    if origin is None or gateway.key is None:
        return None
    for index in range(start, len(origin.fallbacks)):
        model = config.models.get(origin.fallbacks[index])
        if model is None or not gateway.key.allows(model.name):
            continue
        pool = config.pools[model.pool]
        replica = state.balancer.choose(pool)
        if replica is not None:
            logger.warning("model %s: falling back to %s", origin.name, model.name)
            use_model(flow, model)
            gateway.model, gateway.fallback_from = model, origin.name
            return index + 1, pool, replica
    return None


def retry_after_s(state: ProxyState, pool: Pool, gateway: GatewayRequest | None) -> int:
    """Seconds until a replica of the pool, or of a fallback the key may use, is up again."""
    pools = [pool]
    if gateway is not None and gateway.model is not None and gateway.key is not None:
        for name in gateway.model.fallbacks:
            fallback = state.config.models.get(name)
            if fallback is not None and gateway.key.allows(name):
                pools.append(state.config.pools[fallback.pool])
    return min(state.balancer.retry_after_s(p) for p in pools)


def use_model(flow: http.HTTPFlow, model: Model) -> None:
    """Rewrite the request body's `model` to the name the model's replicas expect."""
    body = request_json(flow)
    if body is not None and body.get("model") != model.upstream_model:
        body["model"] = model.upstream_model
        flow.request.content = json.dumps(body).encode()
