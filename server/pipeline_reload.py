"""`bot.py serve --dev`: pipeline files reloaded on save, so the next call uses the edit.

Calls in progress keep the declaration they started with. A file that does not validate is
logged with the declaration error (file, key, choices) and the last good pipelines stay.
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from loguru import logger
from watchfiles import awatch

from pipelines.declaration import DeclarationError
from server.settings import ConfigError

WATCHED_SUFFIX = ".toml"


class PipelineReloader:
    """Watches `directory` and runs `reload()` after each save of a pipeline file."""

    def __init__(self, directory: Path, reload: Callable[[], Awaitable[str]]):
        """`reload()` loads and swaps in the pipelines; it says what changed."""
        self._directory = directory
        self._reload = reload
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.reloads = 0  # swaps done: tests wait on it

    def start(self) -> None:
        """Start watching (in the running event loop)."""
        self._task = asyncio.create_task(self._watch(), name="pipeline-reload")
        logger.info(f"dev mode: pipeline files in {self._directory} are reloaded on save")

    async def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._task:
            await self._task

    async def _watch(self) -> None:
        async for changes in awatch(self._directory, stop_event=self._stop, debounce=200):
            if any(Path(path).suffix == WATCHED_SUFFIX for _, path in changes):
                await self.reload_now()

    async def reload_now(self) -> None:
        """Reload the pipelines; on a bad file, log why and keep the last good ones."""
        try:
            changed = await self._reload()
        except (DeclarationError, ConfigError) as e:
            logger.error(f"pipeline files not reloaded (the last good ones stay): {e}")
            return
        self.reloads += 1
        logger.info(f"pipeline files reloaded: {changed}; the next call uses them")
