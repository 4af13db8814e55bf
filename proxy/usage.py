"""Usage records: token counting (JSON bodies and SSE streams) and the batched Redis writer."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from proxy.config import GatewayKey
from proxy.ratelimit import RateLimiter
from proxy.resp import RespClient, RespError
from proxy.spool import UsageQueue
from proxy.sse import SseEvent, SseParser

logger = logging.getLogger(__name__)

STREAM_MAXLEN = 1_000_000
# Records are written at most this often, so a busy proxy sends one script call per many requests.
BATCH_PAUSE_S = 0.05
# Records per script call: bounds how long one call holds Redis.
MAX_BATCH = 500
# While Redis is unreachable the writer retries this often.
RETRY_PAUSE_S = 1.0
# How long Redis remembers a writer's last applied record: a spool replayed later than this
# (a proxy restarted after a week) could apply a record twice.
MARK_TTL_S = 7 * 86400

# KEYS[1] stream; ARGV[1] a JSON array of [writer mark key, seq, XADD fields, counter commands],
# ARGV[2] mark TTL, ARGV[3] stream MAXLEN. Applies, in order, the records not applied before.
APPLY_LUA = """
local applied = 0
for _, e in ipairs(cjson.decode(ARGV[1])) do
  local seq = tonumber(e[2])
  if seq > tonumber(redis.call('GET', e[1]) or '0') then
    redis.call('SET', e[1], e[2], 'EX', ARGV[2])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(e[3]))
    for _, command in ipairs(e[4]) do redis.call(unpack(command)) end
    applied = applied + 1
  end
end
return applied
"""
APPLY_SHA = hashlib.sha1(APPLY_LUA.encode()).hexdigest()


@dataclass
class TokenCount:
    prompt: int = 0
    completion: int = 0
    # "usage" (the upstream said so), "estimated" (a stream without usage) or "none"
    source: str = "none"

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
    fallback_from: str = ""  # the model asked for, when `model` is a fallback that answered

    def fields(self) -> dict[str, str]:
        """Return the stream entry's fields (all strings, as Redis stores them)."""
        entry = {
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
        if self.fallback_from:
            entry["fallback_from"] = self.fallback_from
        if self.key.project is not None:
            entry["project"] = self.key.project.id
        return entry


def tokens_from_body(content: bytes | None) -> TokenCount:
    """Read the `usage` object of a JSON response (completion, embedding, response, ...)."""
    # Only a JSON object can carry usage: audio or file bytes are not worth decoding.
    if not content or content[:64].lstrip()[:1] != b"{":
        return TokenCount()
    try:
        usage = json.loads(content).get("usage")
    except (ValueError, AttributeError):
        return TokenCount()
    return _from_usage(usage) or TokenCount()


def _from_usage(usage: object) -> TokenCount | None:
    """Read a `usage` object in any of the shapes OpenAI-style APIs report it in.

    Chat, completions and embeddings say prompt/completion tokens; the Responses API, images
    and transcriptions input/output tokens; rerank servers often only total_tokens, which is all
    input, so it counts as prompt tokens.
    """
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if prompt is None and completion is None:
        prompt = usage.get("total_tokens")
        if prompt is None:
            return None  # e.g. a transcription's {"type": "duration", "seconds": 3}
    prompt, completion = prompt or 0, completion or 0
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return TokenCount(prompt, completion, "usage")


class SseTokenTap:
    """Pass SSE chunks through while reading the usage (or counting the text) of their events.

    With `strip_usage` (the proxy, not the client, asked for usage), the usage-only chunk is
    counted but kept from the client; events then leave only once complete, which costs a client
    nothing (it cannot use half an event), while other chunks go through byte for byte.
    """

    def __init__(
        self, strip_usage: bool = False, on_done: Callable[[], None] | None = None
    ) -> None:
        self.usage: TokenCount | None = None
        self.text_chunks = 0
        self.strip_usage = strip_usage
        self.on_done = on_done  # called when the stream's `[DONE]` event goes by
        self._parser = SseParser()
        self._held: list[bytes] = []  # the unfinished event, while stripping
        # "kept" or "dropped" while an LF opening the next chunk may belong to the last event.
        self._lf_of: str | None = None

    @property
    def count(self) -> TokenCount:
        """Return the reported usage, or the completion counted one token per text chunk."""
        if self.usage is not None:
            return self.usage
        return TokenCount(0, self.text_chunks, "estimated" if self.text_chunks else "none")

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        events = self._parser.feed(chunk)
        if not self.strip_usage:
            for event in events:
                self._read(event.data)
            return chunk
        return self._without_usage(chunk, events)

    def _without_usage(self, chunk: bytes, events: list[SseEvent]) -> list[bytes]:
        """Return the chunk's complete events but the usage-only one; hold its unfinished one."""
        out: list[bytes] = []
        start = 0
        if self._lf_of is not None and chunk[:1] == b"\n":
            # The LF finishing the CRLF that ended the last chunk's last event goes its way.
            out += [b"\n"] if self._lf_of == "kept" else []
            start = 1
        self._lf_of = None
        for event in events:
            self._held.append(chunk[start : event.end])
            start = event.end
            dropped = self._read(event.data)
            if not dropped:
                out += self._held
            self._held.clear()
            if event.end == len(chunk) and chunk[-1:] == b"\r":
                self._lf_of = "dropped" if dropped else "kept"
        self._held.append(chunk[start:])
        if not chunk:  # end of the stream: pass on whatever was never a complete event
            out += self._held
            self._held.clear()
        # A list, never b"": mitmproxy would send an empty bytes as the end of a chunked body.
        return [piece for piece in out if piece]

    def _read(self, data: bytes) -> bool:
        """Count one event; tell whether it carried usage and nothing else."""
        if data[:1] != b"{":
            if data == b"[DONE]" and self.on_done is not None:
                self.on_done()
            return False  # [DONE], or nothing a token count could come from
        try:
            payload = json.loads(data)
        except ValueError:
            return False
        if not isinstance(payload, dict):
            return False
        usage = _from_usage(payload.get("usage"))
        if usage is not None:
            self.usage = usage
            return not payload.get("choices")
        if "response" in payload:
            self._read_response_event(payload)
        elif _has_text(payload):
            # Servers stream about one token per chunk: the estimate when no usage comes.
            self.text_chunks += 1
        return False

    def _read_response_event(self, payload: dict) -> None:
        """Read a Responses API event that carries the response: its end brings the usage."""
        response = payload["response"]
        if payload.get("type") not in RESPONSE_ENDS or not isinstance(response, dict):
            return
        usage = _from_usage(response.get("usage"))
        if usage is not None:
            self.usage = usage
        if self.on_done is not None:
            self.on_done()  # no `[DONE]` follows in these streams


# Responses API events that end a stream; each carries the whole response with its usage.
RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _has_text(payload: dict) -> bool:
    if payload.get("type") == "response.output_text.delta":
        return bool(payload.get("delta"))
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        if (isinstance(delta, dict) and delta.get("content")) or choice.get("text"):
            return True
    return False


def estimate_prompt_tokens(body: dict | None) -> int:
    """Estimate a request's prompt tokens from its text (about four characters a token)."""
    if not body:
        return 0
    texts: list[object] = [*_listed(body.get("prompt")), body.get("instructions")]
    # Chat's `messages`; the Responses API's `input` is a string or a list of messages or parts.
    for item in [*(body.get("messages") or ()), *_listed(body.get("input"))]:
        if not isinstance(item, dict):
            texts.append(item)
            continue
        content = item.get("content", item.get("text"))
        parts = content if isinstance(content, list) else [content]
        texts += [part.get("text") if isinstance(part, dict) else part for part in parts]
    return math.ceil(sum(len(t) for t in texts if isinstance(t, str)) / 4)


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


class UsageSink:
    """Write usage records and token counters to Redis in batches, off the request path.

    Records wait in a UsageQueue (memory, then a file while Redis is away or memory is full) and
    are applied by one Lua script per batch. Each record carries its writer's id and a sequence
    number; the script skips any at or below the writer's high-water mark in Redis, so a batch
    sent again (its reply was lost, or the proxy restarted before it knew) is applied once.
    """

    def __init__(
        self, redis: RespClient, prefix: str, limiter: RateLimiter, queue: UsageQueue
    ) -> None:
        self.redis = redis
        self.stream = f"{prefix}usage"
        self.limiter = limiter
        self.queue = queue
        self.mark = f"{prefix}usage:writer:{uuid.uuid4().hex}"
        self._seq = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the background writer on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()  # records left on disk by an earlier run

    def put(self, record: UsageRecord) -> None:
        """Queue a record; it reaches Redis within about BATCH_PAUSE_S."""
        self._seq += 1
        fields = [part for item in record.fields().items() for part in item]
        counters = self.limiter.token_commands(record.key, record.tokens.total, record.ts)
        entry = [self.mark, str(self._seq), fields, [[str(arg) for arg in c] for c in counters]]
        self.queue.put(json.dumps(entry, separators=(",", ":")).encode())
        self._wake.set()

    async def close(self) -> None:
        """Stop the writer after flushing what is queued (what Redis refuses stays on disk)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not await self.flush():
            self.queue.spill()
        self.queue.close()

    async def flush(self) -> bool:
        """Apply every queued record, oldest first; False when Redis is away (they wait)."""
        while batch := self.queue.peek(MAX_BATCH):
            try:
                await self._apply(batch)
            except OSError as exc:
                self.queue.spill()
                logger.warning("usage records wait for Redis (%d queued): %s", len(self.queue), exc)
                return False
            except RespError as exc:
                # Redis refused the batch itself: sending it again cannot help.
                self.queue.dropped += len(batch)
                logger.error("%d usage records refused by Redis, dropped: %s", len(batch), exc)
            self.queue.pop(len(batch))
        return True

    async def _apply(self, batch: list[bytes]) -> None:
        args = (1, self.stream, b"[" + b",".join(batch) + b"]", MARK_TTL_S, STREAM_MAXLEN)
        try:
            await self.redis.call("EVALSHA", APPLY_SHA, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            await self.redis.call("EVAL", APPLY_LUA, *args)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                await asyncio.sleep(BATCH_PAUSE_S)
            else:
                await asyncio.sleep(RETRY_PAUSE_S)
                self._wake.set()
