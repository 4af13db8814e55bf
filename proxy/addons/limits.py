"""Rate limits and budgets of gateway keys and the quotas of their projects, checked in Redis
before a request goes upstream."""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine

from mitmproxy import http

from proxy.config import GatewayKey
from proxy.errors import error_response
from proxy.ratelimit import RateLimiter
from proxy.resp import RespError
from proxy.state import GATEWAY, GatewayRequest

logger = logging.getLogger(__name__)


class Limits:
    """Answer 429 with Retry-After when a key is over its RPM, TPM or token budget, or its
    project over its RPM or tokens per day or month."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def request(self, flow: http.HTTPFlow) -> Coroutine[None, None, None] | None:
        # Only requests that need Redis become a coroutine; the rest stay synchronous and cheap.
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if flow.response or gateway is None or gateway.model is None or gateway.key is None:
            return None
        if not gateway.key.quotas:
            return None
        return self._check(flow, gateway.key)

    async def _check(self, flow: http.HTTPFlow, key: GatewayKey) -> None:
        try:
            rejection = await self.limiter.check(key, time.time())
        except (RespError, OSError) as exc:
            # Failing open keeps the gateway serving when Redis is briefly away.
            logger.warning("limit check for key %s skipped, Redis failed: %s", key.id, exc)
            return
        if rejection is not None:
            flow.response = error_response(
                429, rejection.message, rejection.code, rejection.retry_after_s
            )
