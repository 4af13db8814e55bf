"""Keep the configuration current: watch the source and swap in each valid new document."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from proxy.config import ConfigError, parse_config
from proxy.sources import ConfigSource, Document
from proxy.state import ProxyState

logger = logging.getLogger(__name__)


class ConfigLoader:
    """Apply config changes without a restart; an invalid document leaves the old one in force."""

    def __init__(self, state: ProxyState, source: ConfigSource) -> None:
        self.state = state
        self.source = source
        self._task: asyncio.Task | None = None
        self._applied: Document | None = None

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.source.watch(self.apply))

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def apply(self, document: Document) -> bool:
        """Validate and apply a document; tell whether it is now in force."""
        if document == self._applied:
            return False
        try:
            config = parse_config(document)
        except ConfigError as exc:
            logger.error("config not applied, the old one stays in force: %s", exc)
            return False
        self.state.apply(config)
        self._applied = document
        return True
