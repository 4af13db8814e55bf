"""RPM, TPM and token budgets of gateway keys and of their projects, kept in Redis, so every
proxy enforces the same limit."""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from proxy.config import Budget, GatewayKey, Quota
from proxy.resp import Command, RespClient, RespError

# One round trip: read the token windows, then take a lease of up to ARGV[3] requests from this
# minute's count. KEYS: the minute's requests, the minute's tokens, then one per budget;
# ARGV: rpm and tpm (-1: none), the lease, then each budget's tokens. Returns {verdict, requests
# granted}; verdict 0 = admitted, 1 = over RPM, 2 = over TPM, 3 + i = budget i (from 0) spent.
# With a lease of 1 this is an exact per-request INCR. An RPM of 0 refuses without counting.
CHECK_LUA = """
local rpm, tpm, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= tpm then return {2, 0} end
for i = 3, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i + 1]) then return {i, 0} end
end
if rpm < 0 then return {0, lease} end
if rpm == 0 then return {1, 0} end
local n = redis.call('INCRBY', KEYS[1], lease)
if n == lease then redis.call('EXPIRE', KEYS[1], 120) end
local granted = math.min(lease, rpm - (n - lease))
if granted <= 0 then return {1, 0} end
return {0, granted}
"""

CHECK_SHA = hashlib.sha1(CHECK_LUA.encode()).hexdigest()
MINUTE_TTL_S = 120
# A proxy may admit up to this many requests of one key (or project) on one Redis call; the
# lease is also at most 1% of its limits (a token limit counted as 1000 tokens a request), so
# small limits stay exact and large ones lose at most 1% to leases that expire unused.
MAX_LEASE = 50


@dataclass
class Lease:
    """Requests of one key (or project) this proxy may still admit in one minute without
    asking Redis."""

    minute: int
    left: int


def _quota(limits: GatewayKey | Quota) -> Quota:
    """A key's own quota (whether it limits anything or not), or the quota itself."""
    return limits if isinstance(limits, Quota) else limits.own_quota


def lease_size(limits: GatewayKey | Quota) -> int:
    """Return how many requests one Redis call may admit for this key or quota."""
    quota = _quota(limits)
    caps = [MAX_LEASE]
    if quota.rpm is not None:
        caps.append(quota.rpm // 100)
    caps += [
        tokens // 100_000
        for tokens in (quota.tpm, *(budget.tokens for budget in quota.budgets))
        if tokens is not None
    ]
    return max(1, min(caps))


@dataclass(frozen=True)
class Rejection:
    """Why a request is over its key's (or project's) limits, and when to come back."""

    code: str
    message: str
    retry_after_s: int


@dataclass(frozen=True)
class Windows:
    """Redis keys of the counters a request falls into, and when each window ends."""

    rpm: str
    tpm: str
    budgets: tuple[str, ...]
    minute_end: float
    budget_ends: tuple[float, ...]


class RateLimiter:
    """Check and count requests and tokens against a key's limits and its project's in Redis."""

    def __init__(self, redis: RespClient, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._leases: dict[str, Lease] = {}
        # quota counter -> the lease call under way for it (its outcome: a Rejection or None)
        self._asking: dict[str, asyncio.Future[Rejection | None]] = {}

    def windows(self, limits: GatewayKey | Quota, now: float) -> Windows:
        """Return the counters of a key's own limits (or of a quota) at a moment."""
        quota = _quota(limits)
        minute = int(now // 60)
        base = f"{self.prefix}{quota.counter}"
        periods = [budget_window(budget, now) for budget in quota.budgets]
        return Windows(
            rpm=f"{base}:rpm:{minute}",
            tpm=f"{base}:tpm:{minute}",
            budgets=tuple(f"{base}:budget:{label}" for label, _ in periods),
            minute_end=(minute + 1) * 60.0,
            budget_ends=tuple(end for _, end in periods),
        )

    async def check(self, key: GatewayKey, now: float) -> Rejection | None:
        """Count one request against its key's limits, then its project's; return why it is
        refused, or None. The key's own come first: a key over its own limit does not spend
        the requests its project's other keys share."""
        for quota in key.quotas:
            rejection = await self.check_quota(quota, now)
            if rejection is not None:
                return rejection
        return None

    async def check_quota(self, quota: Quota, now: float) -> Rejection | None:
        """Count one request against one quota; return why it is refused, or None."""
        minute = int(now // 60)
        while True:
            lease = self._leases.get(quota.counter)
            if lease is not None and lease.minute == minute and lease.left > 0:
                lease.left -= 1
                return None
            asking = self._asking.get(quota.counter)
            if asking is None:
                break
            # Another request of this quota is taking a lease: share it. Without this, every
            # request that finds the lease spent while the call is under way (16 clients: most)
            # makes its own call and its own lease, each replacing the last.
            rejection = await asyncio.shield(asking)
            if rejection is not None:
                return rejection
        size = lease_size(quota)
        if size == 1:  # exact counting: nothing to share
            return await self._take_lease(quota, now, size)
        asking = self._asking[quota.counter] = asyncio.get_running_loop().create_future()
        rejection = None
        try:
            rejection = await self._take_lease(quota, now, size)
        finally:
            del self._asking[quota.counter]
            # After a failed call the waiters ask again themselves (and fail open, if Redis is away).
            asking.set_result(rejection)
        return rejection

    async def _take_lease(self, quota: Quota, now: float, size: int) -> Rejection | None:
        """Ask Redis for up to `size` requests of this minute; return why it refused, or None."""
        minute = int(now // 60)
        w = self.windows(quota, now)
        keys = [w.rpm, w.tpm, *w.budgets]
        limits = [_limit_arg(quota.rpm), _limit_arg(quota.tpm), size]
        verdict, granted = await self._run_check(
            keys, [*limits, *(b.tokens for b in quota.budgets)]
        )
        if verdict == 0:
            self._leases[quota.counter] = Lease(minute, granted - 1)
            return None
        return refusal(quota, verdict, w, now)

    async def _run_check(self, keys: list[str], args: list[int]) -> tuple[int, int]:
        try:
            reply = await self.redis.call("EVALSHA", CHECK_SHA, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            reply = await self.redis.call("EVAL", CHECK_LUA, len(keys), *keys, *args)
        if not isinstance(reply, list) or len(reply) != 2:
            raise RespError(f"unexpected limit script reply {reply!r}")
        return int(reply[0]), int(reply[1])

    def token_commands(self, key: GatewayKey, tokens: int, now: float) -> list[Command]:
        """Return the commands that count a response's tokens into the windows of the key's
        limits and of its project's."""
        commands: list[Command] = []
        for quota in key.quotas if tokens > 0 else ():
            w = self.windows(quota, now)
            if quota.tpm is not None:
                commands += [("INCRBY", w.tpm, tokens), ("EXPIRE", w.tpm, MINUTE_TTL_S)]
            for counter, end in zip(w.budgets, w.budget_ends, strict=True):
                commands += [("INCRBY", counter, tokens), ("EXPIREAT", counter, int(end) + 3600)]
        return commands


def _limit_arg(limit: int | None) -> int:
    """A limit as the check script takes it: -1 for none."""
    return -1 if limit is None else limit


def refusal(quota: Quota, verdict: int, w: Windows, now: float) -> Rejection | None:
    """Say which of a quota's limits refused (the check script's verdict), and until when."""
    wait_minute = math.ceil(w.minute_end - now)
    if verdict in (1, 2):
        limit, unit, name = (quota.rpm, "requests", "rpm") if verdict == 1 else (
            quota.tpm, "tokens", "tpm")  # fmt: skip
        if quota.project:
            return Rejection(
                "project_quota_exceeded",
                f"Project '{quota.project}' is over its gateway quota of {limit} {unit} per "
                f"minute ({name}).",
                wait_minute,
            )
        return Rejection("rate_limit_exceeded", f"Over {limit} {unit} per minute.", wait_minute)
    if 3 <= verdict < 3 + len(quota.budgets):
        budget = quota.budgets[verdict - 3]
        wait = math.ceil(w.budget_ends[verdict - 3] - now)
        if quota.project:
            return Rejection(
                "project_quota_exceeded",
                f"Project '{quota.project}' has spent its gateway quota of {budget.tokens} "
                f"tokens per {budget.period} (tokens_per_{budget.period}).",
                wait,
            )
        return Rejection(
            "budget_exceeded",
            f"Token budget of {budget.tokens} per {budget.period} is spent.",
            wait,
        )
    return None


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
