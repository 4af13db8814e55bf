"""Per-key RPM, TPM and token budgets kept in Redis, so every proxy enforces the same limit."""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from proxy.config import Budget, GatewayKey
from proxy.resp import Command, RespClient, RespError

# One round trip: read the token windows, then take a lease of up to ARGV[4] requests from this
# minute's count. Returns {verdict, requests granted}; verdict 0 = admitted, 1 = over RPM,
# 2 = over TPM, 3 = budget spent. With a lease of 1 this is an exact per-request INCR.
CHECK_LUA = """
local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
if tpm > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= tpm then return {2, 0} end
if budget > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= budget then return {3, 0} end
if rpm == 0 then return {0, lease} end
local n = redis.call('INCRBY', KEYS[1], lease)
if n == lease then redis.call('EXPIRE', KEYS[1], 120) end
local granted = math.min(lease, rpm - (n - lease))
if granted <= 0 then return {1, 0} end
return {0, granted}
"""

CHECK_SHA = hashlib.sha1(CHECK_LUA.encode()).hexdigest()
MINUTE_TTL_S = 120
# A proxy may admit up to this many requests of one key on one Redis call; the lease is also
# at most 1% of the key's limits (a token limit counted as 1000 tokens a request), so small
# limits stay exact and large ones lose at most 1% to leases that expire unused.
MAX_LEASE = 50


@dataclass
class Lease:
    """Requests of one key this proxy may still admit in one minute without asking Redis."""

    minute: int
    left: int


def lease_size(key: GatewayKey) -> int:
    """Return how many requests one Redis call may admit for this key."""
    caps = [MAX_LEASE]
    if key.rpm:
        caps.append(key.rpm // 100)
    caps += [
        tokens // 100_000 for tokens in (key.tpm, key.budget.tokens if key.budget else 0) if tokens
    ]
    return max(1, min(caps))


@dataclass(frozen=True)
class Rejection:
    """Why a request is over its key's limits, and when to come back."""

    code: str
    message: str
    retry_after_s: int


@dataclass(frozen=True)
class Windows:
    """Redis keys of the counters a request falls into, and when each window ends."""

    rpm: str
    tpm: str
    budget: str
    minute_end: float
    budget_end: float


class RateLimiter:
    """Check and count requests and tokens against a key's limits in Redis."""

    def __init__(self, redis: RespClient, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._leases: dict[str, Lease] = {}
        # key id -> the lease call under way for that key (its outcome: a Rejection or None)
        self._asking: dict[str, asyncio.Future[Rejection | None]] = {}

    def windows(self, key: GatewayKey, now: float) -> Windows:
        """Return the counters for a key at a moment."""
        minute = int(now // 60)
        base = f"{self.prefix}limit:{key.id}"
        label, budget_end = budget_window(key.budget, now)
        return Windows(
            rpm=f"{base}:rpm:{minute}",
            tpm=f"{base}:tpm:{minute}",
            budget=f"{base}:budget:{label}",
            minute_end=(minute + 1) * 60.0,
            budget_end=budget_end,
        )

    async def check(self, key: GatewayKey, now: float) -> Rejection | None:
        """Count one request; return why it is refused, or None."""
        minute = int(now // 60)
        while True:
            lease = self._leases.get(key.id)
            if lease is not None and lease.minute == minute and lease.left > 0:
                lease.left -= 1
                return None
            asking = self._asking.get(key.id)
            if asking is None:
                break
            # Another request of this key is taking a lease: share it. Without this, every
            # request that finds the lease spent while the call is under way (16 clients: most)
            # makes its own call and its own lease, each replacing the last.
            rejection = await asyncio.shield(asking)
            if rejection is not None:
                return rejection
        size = lease_size(key)
        if size == 1:  # exact counting: nothing to share
            return await self._take_lease(key, now, size)
        asking = self._asking[key.id] = asyncio.get_running_loop().create_future()
        rejection = None
        try:
            rejection = await self._take_lease(key, now, size)
        finally:
            del self._asking[key.id]
            # After a failed call the waiters ask again themselves (and fail open, if Redis is away).
            asking.set_result(rejection)
        return rejection

    async def _take_lease(self, key: GatewayKey, now: float, size: int) -> Rejection | None:
        """Ask Redis for up to `size` requests of this minute; return why it refused, or None."""
        minute = int(now // 60)
        w = self.windows(key, now)
        limits = [key.rpm or 0, key.tpm or 0, key.budget.tokens if key.budget else 0]
        verdict, granted = await self._run_check([w.rpm, w.tpm, w.budget], [*limits, size])
        if verdict == 0:
            self._leases[key.id] = Lease(minute, granted - 1)
            return None
        wait_minute = math.ceil(w.minute_end - now)
        if verdict == 1:
            return Rejection(
                "rate_limit_exceeded", f"Over {key.rpm} requests per minute.", wait_minute
            )
        if verdict == 2:
            return Rejection(
                "rate_limit_exceeded", f"Over {key.tpm} tokens per minute.", wait_minute
            )
        if verdict == 3:
            assert key.budget is not None
            return Rejection(
                "budget_exceeded",
                f"Token budget of {key.budget.tokens} per {key.budget.period} is spent.",
                math.ceil(w.budget_end - now),
            )
        return None

    async def _run_check(self, keys: list[str], args: list[int]) -> tuple[int, int]:
        try:
            reply = await self.redis.call("EVALSHA", CHECK_SHA, 3, *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            reply = await self.redis.call("EVAL", CHECK_LUA, 3, *keys, *args)
        if not isinstance(reply, list) or len(reply) != 2:
            raise RespError(f"unexpected limit script reply {reply!r}")
        return int(reply[0]), int(reply[1])

    def token_commands(self, key: GatewayKey, tokens: int, now: float) -> list[Command]:
        """Return the commands that count a response's tokens into the key's windows."""
        if tokens <= 0 or not (key.tpm or key.budget):
            return []
        w = self.windows(key, now)
        commands: list[Command] = []
        if key.tpm:
            commands += [("INCRBY", w.tpm, tokens), ("EXPIRE", w.tpm, MINUTE_TTL_S)]
        if key.budget:
            commands += [
                ("INCRBY", w.budget, tokens),
                ("EXPIREAT", w.budget, int(w.budget_end) + 3600),
            ]
        return commands


def budget_window(budget: Budget | None, now: float) -> tuple[str, float]:
    """Return the label of the budget period holding `now` (UTC) and when it ends."""
    if budget is None:
        return "none", now
    t = datetime.fromtimestamp(now, UTC)
    if budget.period == "hour":
        start = t.replace(minute=0, second=0, microsecond=0)
        return start.strftime("h%Y%m%d%H"), (start + timedelta(hours=1)).timestamp()
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if budget.period == "day":
        return day.strftime("d%Y%m%d"), (day + timedelta(days=1)).timestamp()
    if budget.period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday.strftime("w%Y%m%d"), (monday + timedelta(days=7)).timestamp()
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.strftime("m%Y%m"), following.timestamp()
