"""Token counting, limit windows and the Redis limiter (real Redis)."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from proxy.config import Budget, GatewayKey, Project
from proxy.ratelimit import RateLimiter, budget_window, lease_size
from proxy.resp import RespClient, RespError
from proxy.spool import SpoolLocked, UsageQueue
from proxy.tests.proxy_harness import REDIS_URL
from proxy.usage import (
    SseTokenTap,
    TokenCount,
    UsageRecord,
    UsageSink,
    estimate_prompt_tokens,
    tokens_from_body,
)


def sse(*payloads: object) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
        + b"data: [DONE]\n\n"
    )


def test_tap_counts_text_chunks_split_anywhere_and_passes_bytes_through():
    stream = sse(
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {"choices": [{"text": "!"}]},
    )
    tap = SseTokenTap()
    out = b"".join(tap(stream[i : i + 7]) for i in range(0, len(stream), 7))
    assert out == stream
    assert (tap.count.completion, tap.count.source) == (3, "estimated")


def crlf(stream: bytes) -> bytes:
    return stream.replace(b"\n", b"\r\n")


@pytest.mark.parametrize("framing", [bytes, crlf])
def test_tap_strips_the_usage_chunk_it_asked_for_wherever_the_stream_is_cut(framing):
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
    text = [{"choices": [{"delta": {"content": "a"}}]}, {"choices": [{"delta": {"content": "b"}}]}]
    stream, without_usage = framing(sse(*text, usage)), framing(sse(*text))
    for cut in range(1, len(stream)):
        tap = SseTokenTap(strip_usage=True)
        pieces = [*tap(stream[:cut]), *tap(stream[cut:]), *tap(b"")]
        assert b"".join(pieces) == without_usage and b"" not in pieces
        assert (tap.count.prompt, tap.count.completion, tap.count.source) == (7, 2, "usage")


def test_prompt_estimate_reads_the_text_of_messages_and_prompts():
    chat = {"messages": [{"role": "user", "content": "12345678"},
                         {"role": "user", "content": [{"type": "text", "text": "1234"}]}]}  # fmt: skip
    assert estimate_prompt_tokens(chat) == 3
    assert estimate_prompt_tokens({"prompt": ["12", "345"]}) == 2
    assert estimate_prompt_tokens({"prompt": [1, 2]}) == estimate_prompt_tokens(None) == 0


def test_tap_prefers_the_usage_the_server_reports():
    tap = SseTokenTap()
    tap(sse({"choices": [{"delta": {"content": "a"}}]},
            {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}}))  # fmt: skip
    assert (tap.count.prompt, tap.count.completion, tap.count.source) == (7, 9, "usage")


def test_tokens_from_json_bodies():
    assert tokens_from_body(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}').total == 7
    assert tokens_from_body(b'{"usage": {"prompt_tokens": 3}}').completion == 0
    assert tokens_from_body(b"not json").source == "none"
    assert tokens_from_body(b"[1]").source == "none"
    assert tokens_from_body(b'{"usage": {"prompt_tokens": "x"}}').source == "none"


@pytest.mark.parametrize(
    ("period", "label", "end"),
    [
        ("hour", "h2026031415", datetime(2026, 3, 14, 16, tzinfo=UTC)),
        ("day", "d20260314", datetime(2026, 3, 15, tzinfo=UTC)),
        ("week", "w20260309", datetime(2026, 3, 16, tzinfo=UTC)),
        ("month", "m202603", datetime(2026, 4, 1, tzinfo=UTC)),
    ],
)
def test_budget_windows_are_utc_calendar_periods(period, label, end):
    now = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC).timestamp()
    assert budget_window(Budget(100, period), now) == (label, end.timestamp())


def test_december_budget_ends_on_new_year():
    now = datetime(2026, 12, 31, 23, 0, tzinfo=UTC).timestamp()
    assert budget_window(Budget(1, "month"), now)[1] == datetime(2027, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture
async def limiter(redis_prefix):
    client = RespClient(REDIS_URL)
    yield RateLimiter(client, redis_prefix)
    await client.close()


@pytest.fixture
async def redis(redis_prefix):
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_rpm_counts_requests_within_the_minute(limiter):
    key = GatewayKey(id="k", sha256="0" * 64, rpm=2)
    now = 1_800_000_010.0  # 10 s into a minute
    assert await limiter.check(key, now) is None
    assert await limiter.check(key, now + 1) is None
    refused = await limiter.check(key, now + 2)
    assert refused is not None and refused.retry_after_s == 48
    assert await limiter.check(key, now + 60) is None  # next minute, fresh count


@pytest.mark.redis
@pytest.mark.anyio
async def test_large_limits_lease_requests_and_small_ones_stay_exact(limiter, redis):
    big = GatewayKey(id="big", sha256="0" * 64, rpm=10_000)
    small = GatewayKey(id="small", sha256="0" * 64, rpm=500, tpm=200_000)
    assert (lease_size(big), lease_size(small)) == (50, 2)
    now = 1_800_000_000.0
    counter = limiter.windows(big, now).rpm
    assert await limiter.check(big, now) is None
    assert await redis.get(counter) == b"50"  # one call took 50 requests of the minute
    for _ in range(49):
        assert await limiter.check(big, now) is None
    assert await redis.get(counter) == b"50"  # ... and served them without Redis
    assert await limiter.check(big, now) is None
    assert await redis.get(counter) == b"100"


@pytest.mark.redis
@pytest.mark.anyio
async def test_concurrent_requests_share_one_lease_call(limiter, redis):
    big = GatewayKey(id="big", sha256="0" * 64, rpm=10_000)
    tight = GatewayKey(id="tight", sha256="0" * 64, rpm=5_000)  # lease of 50, over after 3 leases
    now = 1_800_000_000.0
    # 16 clients find the lease spent at once: one call takes 50, the others wait and use it.
    admitted = await asyncio.gather(*(limiter.check(big, now) for _ in range(40)))
    assert admitted == [None] * 40
    assert await redis.get(limiter.windows(big, now).rpm) == b"50"
    await redis.set(limiter.windows(tight, now).rpm, 5_000)  # the minute is spent elsewhere
    refused = await asyncio.gather(*(limiter.check(tight, now) for _ in range(10)))
    assert {r.code for r in refused if r is not None} == {"rate_limit_exceeded"}
    assert None not in refused


@pytest.mark.redis
@pytest.mark.anyio
async def test_lease_never_grants_past_the_limit(limiter):
    key = GatewayKey(id="k", sha256="0" * 64, rpm=250)  # lease of 2 requests
    now = 1_800_000_000.0
    admitted = [await limiter.check(key, now) is None for _ in range(260)]
    assert admitted.count(True) == 250
    assert admitted[-1] is False


@pytest.mark.redis
@pytest.mark.anyio
async def test_tokens_fill_tpm_and_budget(limiter):
    key = GatewayKey(id="k", sha256="0" * 64, tpm=100, budget=Budget(150, "day"))
    now = 1_800_000_000.0
    await limiter.redis.pipeline(limiter.token_commands(key, 100, now))
    over_tpm = await limiter.check(key, now)
    assert over_tpm is not None and "tokens per minute" in over_tpm.message
    await limiter.redis.pipeline(limiter.token_commands(key, 60, now + 60))
    spent = await limiter.check(key, now + 120)
    assert spent is not None and spent.code == "budget_exceeded"
    assert spent.retry_after_s > 3600


def project_keys(**quotas: int | None) -> tuple[GatewayKey, GatewayKey]:
    """Two keys of one project with these quotas (rpm, tokens_per_day, tokens_per_month)."""
    team = Project(id="7", name="team-a", **quotas)
    return (GatewayKey(id="a", sha256="0" * 64, project=team),
            GatewayKey(id="b", sha256="1" * 64, project=team))  # fmt: skip


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_keys_of_a_project_share_its_rpm(limiter):
    a, b = project_keys(rpm=3)
    now = 1_800_000_010.0
    assert [await limiter.check(key, now) for key in (a, b, a)] == [None, None, None]
    refused = await limiter.check(b, now + 1)  # the project's fourth request this minute
    assert refused is not None and refused.code == "project_quota_exceeded"
    assert refused.message == (
        "Project 'team-a' is over its gateway quota of 3 requests per minute (rpm)."
    )
    assert refused.retry_after_s == 49
    assert await limiter.check(a, now + 60) is None  # next minute, fresh count


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_key_over_its_own_limit_spends_none_of_its_projects_requests(limiter, redis):
    team = Project(id="7", name="team-a", rpm=2)
    tight = GatewayKey(id="tight", sha256="0" * 64, rpm=1, project=team)
    other = GatewayKey(id="other", sha256="1" * 64, project=team)
    now = 1_800_000_000.0
    assert await limiter.check(tight, now) is None
    own = await limiter.check(tight, now)
    assert own is not None and own.code == "rate_limit_exceeded"  # the key's, not the project's
    assert await limiter.check(other, now) is None  # the project's second request fits
    assert await redis.get(limiter.windows(team.quota, now).rpm) == b"2"
    last = await limiter.check(other, now)
    assert last is not None and last.code == "project_quota_exceeded"


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_projects_tokens_per_day_are_spent_by_all_its_keys(limiter):
    a, b = project_keys(tokens_per_day=100, tokens_per_month=1000)
    now = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    commands = limiter.token_commands(a, 60, now)
    assert {command[1] for command in commands} == {
        f"{limiter.prefix}limit-project:7:budget:d20270115",
        f"{limiter.prefix}limit-project:7:budget:m202701",
    }
    await limiter.redis.pipeline(commands)
    assert await limiter.check(b, now) is None  # 60 of 100
    await limiter.redis.pipeline(limiter.token_commands(b, 40, now))
    spent = await limiter.check(a, now)  # 100 of 100: the day is spent, by both keys
    assert spent is not None and spent.code == "project_quota_exceeded"
    assert "100 tokens per day (tokens_per_day)" in spent.message
    end_of_day = datetime(2027, 1, 16, tzinfo=UTC).timestamp()
    assert spent.retry_after_s == end_of_day - now
    assert await limiter.check(b, now + 86400) is None  # a new day; 100 of 1000 this month


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_project_quota_of_zero_allows_nothing(limiter):
    (no_requests, _), (no_tokens, _) = project_keys(rpm=0), project_keys(tokens_per_month=0)
    now = 1_800_000_000.0
    refused = await limiter.check(no_requests, now)
    assert refused is not None and "0 requests per minute" in refused.message
    refused = await limiter.check(no_tokens, now)
    assert refused is not None and "0 tokens per month" in refused.message


def test_keys_without_limits_or_projects_without_quotas_count_nothing():
    (free, _), (quota_less, _) = project_keys(), project_keys(rpm=None)
    assert free.quotas == quota_less.quotas == ()
    assert GatewayKey(id="k", sha256="0" * 64).quotas == ()
    assert [q.counter for q in project_keys(rpm=5)[0].quotas] == ["limit-project:7"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.redis
@pytest.mark.anyio
async def test_resp_client_pipelines_replies_to_the_right_callers(redis_prefix, redis):
    client = RespClient(REDIS_URL)
    try:
        keys = [f"{redis_prefix}n{i}" for i in range(30)]
        await asyncio.gather(*(client.call("SET", k, i) for i, k in enumerate(keys)))
        values = await asyncio.gather(*(client.call("INCR", k) for k in keys))
        assert values == list(range(1, 31))
        assert await client.call("GET", keys[3]) == b"4"
        assert await client.call("MGET", keys[0], f"{redis_prefix}none") == [b"1", None]
        with pytest.raises(RespError, match="NOSCRIPT"):
            await client.call("EVALSHA", "0" * 40, 0)
        replies = await client.pipeline(
            [("INCR", keys[1]), ("HGET", keys[1], "x"), ("INCR", keys[1])]
        )
        assert replies[0] == 3 and replies[2] == 4
        assert isinstance(replies[1], RespError) and "WRONGTYPE" in str(replies[1])
        own_id = await client.call("CLIENT", "ID")
        waiting = asyncio.ensure_future(client.call("BLPOP", f"{redis_prefix}never", 10))
        await asyncio.sleep(0.05)
        await redis.execute_command("CLIENT", "KILL", "ID", own_id)
        with pytest.raises(ConnectionError):
            await waiting  # a call in flight when the connection dies fails at once
        assert await client.call("INCR", keys[0]) == 2  # the next call reconnects
    finally:
        await client.close()


def usage_record(request_id: str, key: GatewayKey) -> UsageRecord:
    return UsageRecord(
        ts=1_800_000_000.0, request_id=request_id, key=key, model="m", endpoint="/v1/completions",
        replica="r", status=200, tokens=TokenCount(2, 3, "usage"), latency_ms=1.0, ttfb_ms=0.5,
        stream=False, proxy="test",
    )  # fmt: skip


@pytest.mark.redis
@pytest.mark.anyio
async def test_usage_records_spill_to_disk_while_redis_is_away_and_arrive_once(
    redis_prefix, redis, tmp_path
):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        away = RespClient(f"redis://127.0.0.1:{closed.getsockname()[1]}/0")
    key = GatewayKey(id="k", sha256="0" * 64, user="ann", tpm=1000)
    spool = tmp_path / "spool.jsonl"
    sink = UsageSink(
        away, redis_prefix, RateLimiter(away, redis_prefix), UsageQueue(spool, 2, 1 << 20)
    )
    for i in range(3):
        sink.put(usage_record(f"r{i}", key))
    assert (sink.queue.memory_count, sink.queue.disk_count) == (2, 1)  # memory holds two
    assert await sink.flush() is False
    assert (sink.queue.memory_count, sink.queue.disk_count) == (0, 3)  # Redis away: all on disk
    sink.put(usage_record("r3", key))
    assert sink.queue.disk_count == 4
    left_behind = spool.read_bytes()  # what a proxy killed now would find on its next start
    back = RespClient(REDIS_URL)
    sink.redis = sink.limiter.redis = back
    try:
        assert await sink.flush() is True
        assert len(sink.queue) == 0 and spool.stat().st_size == 0
        await sink.close()
        # A restarted proxy sends the old spool again: the writer's mark in Redis skips it all.
        (tmp_path / "again.jsonl").write_bytes(left_behind)
        again = UsageQueue(tmp_path / "again.jsonl", 2, 1 << 20)
        replay = UsageSink(back, redis_prefix, RateLimiter(back, redis_prefix), again)
        assert len(again) == 4
        assert await replay.flush() is True and len(again) == 0
        await replay.close()
    finally:
        await back.close()
    entries = await redis.xrange(f"{redis_prefix}usage")
    assert [fields[b"request_id"] for _, fields in entries] == [b"r0", b"r1", b"r2", b"r3"]
    assert await redis.get(sink.limiter.windows(key, 1_800_000_000.0).tpm) == b"20"


def test_usage_spool_bound_drops_and_counts(tmp_path):
    queue = UsageQueue(tmp_path / "spool.jsonl", 1, 25)
    for entry in (b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10):
        queue.put(entry)
    assert (queue.memory_count, queue.disk_count, queue.dropped) == (1, 2, 1)
    assert queue.peek(10) == [b"a" * 10]  # memory first: it is older
    queue.pop(1)
    assert queue.peek(10) == [b"b" * 10, b"c" * 10]
    queue.pop(2)
    assert len(queue) == 0
    with pytest.raises(SpoolLocked):
        UsageQueue(tmp_path / "spool.jsonl", 1, 25)  # one proxy per spool file
    queue.close()
