"""Rate limits and budgets of gateway keys, checked in Redis before a request goes upstream."""

from __future__ import annotations

import logging
import time

from mitmproxy import http
from redis.exceptions import RedisError

from proxy.errors import error_response
from proxy.ratelimit import RateLimiter
from proxy.resp import RespError
from proxy.state import GATEWAY, GatewayRequest

logger = logging.getLogger(__name__)


class Limits:
    """Answer 429 with Retry-After when a key is over its RPM, TPM or token budget."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.redis_failures = 0

    async def request(self, flow: http.HTTPFlow) -> None:
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if flow.response or gateway is None or gateway.model is None or gateway.key is None:
            return
        key = gateway.key
        if not (key.rpm or key.tpm or key.budget):
            return
        try:
            rejection = await self.limiter.check(key, time.time())
        except (RedisError, RespError, OSError) as exc:
            # Failing open keeps the gateway serving when Redis is briefly away.
            self.redis_failures += 1
            logger.warning("limit check for key %s skipped, Redis failed: %s", key.id, exc)
            return
        if rejection is not None:
            flow.response = error_response(
                429, rejection.message, rejection.code, rejection.retry_after_s
            )
