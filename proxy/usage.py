"""Usage records: token counting (JSON bodies and SSE streams) and the batched Redis writer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from proxy.config import GatewayKey
from proxy.ratelimit import RateLimiter
from proxy.resp import Command, RespClient

logger = logging.getLogger(__name__)

STREAM_MAXLEN = 1_000_000
# Records are written at most this often, so a busy proxy sends one pipeline per many requests.
BATCH_PAUSE_S = 0.05
# While Redis is unreachable, records wait in memory (the newest this many) and are retried.
MAX_BUFFERED = 100_000
RETRY_PAUSE_S = 1.0


@dataclass
class TokenCount:
    prompt: int = 0
    completion: int = 0
    source: str = "none"  # "usage" (the upstream said so), "counted" (stream chunks) or "none"

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass
class UsageRecord:
    """One gateway request, as written to the usage stream."""

    ts: float
    request_id: str
    key: GatewayKey
    model: str
    endpoint: str
    replica: str
    status: int
    tokens: TokenCount
    latency_ms: float
    ttfb_ms: float
    stream: bool
    proxy: str
    x_request_id: str = ""

    def fields(self) -> dict[str, str]:
        """Return the stream entry's fields (all strings, as Redis stores them)."""
        return {
            "v": "1",
            "ts": f"{self.ts:.3f}",
            "request_id": self.request_id,
            "key_id": self.key.id,
            "user": self.key.user,
            "model": self.model,
            "endpoint": self.endpoint,
            "replica": self.replica,
            "status": str(self.status),
            "prompt_tokens": str(self.tokens.prompt),
            "completion_tokens": str(self.tokens.completion),
            "total_tokens": str(self.tokens.total),
            "tokens_source": self.tokens.source,
            "latency_ms": f"{self.latency_ms:.2f}",
            "ttfb_ms": f"{self.ttfb_ms:.2f}",
            "stream": "1" if self.stream else "0",
            "proxy": self.proxy,
            "x_request_id": self.x_request_id,
        }


def tokens_from_body(content: bytes | None) -> TokenCount:
    """Read the `usage` object of a JSON completion or embedding response."""
    try:
        usage = json.loads(content or b"").get("usage")
    except (ValueError, AttributeError):
        return TokenCount()
    return _from_usage(usage) or TokenCount()


def _from_usage(usage: object) -> TokenCount | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return TokenCount(prompt, completion, "usage")


class SseTokenTap:
    """Pass SSE chunks through untouched while counting tokens from the events they carry."""

    def __init__(self) -> None:
        self.count = TokenCount()
        self._buffer = b""
        self._chunks_with_text = 0

    def __call__(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        *events, self._buffer = self._buffer.split(b"\n\n")
        for event in events:
            self._read_event(event)
        return chunk

    def _read_event(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                continue
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            if not isinstance(payload, dict):
                continue
            usage = _from_usage(payload.get("usage"))
            if usage is not None:
                self.count = usage
            elif self.count.source != "usage" and _has_text(payload):
                # Servers stream about one token per chunk; this is the count when no usage came.
                self._chunks_with_text += 1
                self.count = TokenCount(0, self._chunks_with_text, "counted")


def _has_text(payload: dict) -> bool:
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        if (isinstance(delta, dict) and delta.get("content")) or choice.get("text"):
            return True
    return False


class UsageSink:
    """Write usage records and token counters to Redis in batches, off the request path."""

    def __init__(self, redis: RespClient, prefix: str, limiter: RateLimiter) -> None:
        self.redis = redis
        self.stream = f"{prefix}usage"
        self.limiter = limiter
        self._pending: list[UsageRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the background writer on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, record: UsageRecord) -> None:
        """Queue a record; it reaches Redis within about BATCH_PAUSE_S."""
        self._pending.append(record)
        self._wake.set()

    async def close(self) -> None:
        """Stop the writer after flushing what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> bool:
        """Write every queued record in one pipeline; keep them for a retry if Redis is away."""
        batch, self._pending = self._pending, []
        if not batch:
            return True
        commands: list[Command] = []
        for record in batch:
            fields = [part for item in record.fields().items() for part in item]
            commands.append(("XADD", self.stream, "MAXLEN", "~", STREAM_MAXLEN, "*", *fields))
            commands += self.limiter.token_commands(record.key, record.tokens.total, record.ts)
        try:
            replies = await self.redis.pipeline(commands)
        except OSError as exc:
            self._pending = (batch + self._pending)[-MAX_BUFFERED:]
            logger.warning("usage records wait for Redis (%d queued): %s", len(self._pending), exc)
            return False
        failed = [r for r in replies if isinstance(r, BaseException)]
        if failed:
            logger.warning("%d of %d usage writes failed: %s", len(failed), len(replies), failed[0])
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                await asyncio.sleep(BATCH_PAUSE_S)
            else:
                await asyncio.sleep(RETRY_PAUSE_S)
                self._wake.set()
