"""Where the configuration document comes from: a watched file or the portal (ETag + pub/sub)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml
from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy import CONFIG_CONTRACT
from proxy.config import ConfigError, contract_problem

logger = logging.getLogger(__name__)

Document = dict[str, Any]
Apply = Callable[[Document], object]

CONFIG_PATH = "/api/v1/proxy/config"
CONTRACT_HEADER = "spectr-proxy-contract"
FILE_POLL_S = 0.2


class ConfigSource(Protocol):
    async def load_now(self) -> Document | None: ...

    async def watch(self, apply: Apply) -> None: ...


class FileSource:
    """Read the document from a JSON or YAML file and re-read it when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None

    async def load_now(self) -> Document:
        """Read the file; raise ConfigError when it cannot be read or parsed."""
        return self.read()

    def read(self) -> Document:
        """Read the file; raise ConfigError when it cannot be read or parsed."""
        self._seen = self._stamp()
        try:
            text = self.path.read_text()
            data = (
                yaml.safe_load(text) if self.path.suffix in (".yaml", ".yml") else json.loads(text)
            )
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{self.path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: the document must be an object")
        return data

    async def watch(self, apply: Apply) -> None:
        """Apply the file again each time its size, inode or modification time changes."""
        while True:
            await asyncio.sleep(FILE_POLL_S)
            if self._stamp() == self._seen:
                continue
            try:
                apply(self.read())
            except ConfigError as exc:
                logger.error("config file not applied: %s", exc)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


class PortalSource:
    """Fetch the document from the portal with If-None-Match; refetch on a Redis notification."""

    def __init__(
        self,
        portal_url: str,
        token: str,
        redis: Redis | None,
        channel: str,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.url = portal_url.rstrip("/") + CONFIG_PATH
        # The contract this proxy speaks: the portal refuses (409) one it does not serve.
        self.headers = {
            "authorization": f"Bearer {token}",
            "accept": "application/json",
            CONTRACT_HEADER: CONFIG_CONTRACT,
        }
        self.redis = redis
        self.channel = channel
        self.poll_interval_s = poll_interval_s
        self.etag = ""
        self._wake = asyncio.Event()

    async def load_now(self) -> Document | None:
        """Fetch once at start; None when the portal cannot answer yet."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            return self._accept(await self._get(client, {}))

    async def watch(self, apply: Apply) -> None:
        """Refetch on each notification and at least every poll interval."""
        listener = asyncio.get_running_loop().create_task(self._listen())
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                    self._wake.clear()
                    headers = {"if-none-match": self.etag} if self.etag else {}
                    response = await self._get(client, headers)
                    document = self._accept(response)
                    if document is not None:
                        apply(document)
        finally:
            listener.cancel()

    async def _get(self, client: httpx.AsyncClient, extra: dict[str, str]) -> httpx.Response | None:
        try:
            return await client.get(self.url, headers={**self.headers, **extra})
        except httpx.HTTPError as exc:
            logger.warning("portal config fetch failed: %s", exc)
            return None

    def _accept(self, response: httpx.Response | None) -> Document | None:
        if response is None or response.status_code == 304:
            return None
        if response.status_code == 409:  # the portal does not serve this proxy's contract
            logger.error("the portal refuses this proxy: %s", _message(response))
            return None
        if response.status_code != 200:
            logger.warning("portal config fetch answered %s", response.status_code)
            return None
        try:
            document = response.json()
        except ValueError:
            logger.error("portal config is not JSON")
            return None
        if not isinstance(document, dict):
            logger.error("portal config is not a JSON object")
            return None
        problem = contract_problem(response.headers.get(CONTRACT_HEADER), "portal")
        if problem:  # kept on the last good document, as for any refused one
            logger.error("portal config refused: %s", problem)
            return None
        self.etag = response.headers.get("etag", "") or str(document.get("etag", ""))
        return document

    async def _listen(self) -> None:
        if self.redis is None:
            return
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._wake.set()  # changes made while unsubscribed are fetched now
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake.set()
            except (RedisError, OSError) as exc:
                logger.warning("config notifications lost (%s); polling until Redis is back", exc)
                await asyncio.sleep(1.0)


def _message(response: httpx.Response) -> str:
    """The portal's error message, or the start of its body."""
    try:
        return str(response.json().get("message"))
    except (ValueError, AttributeError):
        return response.text[:200]
