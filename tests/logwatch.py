"""Wake a test on every line a logger writes, to wait for state that changes with a log line.

Some of a node's state has no event a test can await, but each change of it is logged right
after it is made: a session's end (``logout``, once it is gone from ``sessions.by_user``), a
refused bus message (``bus message refused``, once its counter is incremented), the store's
failed connects. :meth:`LogWatch.until` re-checks its condition on each such line instead of
polling on a timer, so it returns on the event itself; its timeout only keeps a broken test
from hanging, and no verdict depends on how long the wait took.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["LogWatch", "watching"]


class LogWatch(logging.Handler):
    """A handler that records every line and wakes :meth:`until` (safe from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self._loop = loop
        self._changed = asyncio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The store logs from its own thread: the event is set on the loop, never across.
        self._loop.call_soon_threadsafe(self._wake, record)

    def _wake(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def messages(self) -> list[str]:
        """What was logged so far, as the lines' messages."""
        return [r.getMessage() for r in self.records]

    def has(self, message: str, **fields: object) -> bool:
        """Whether a line ``message`` was logged with these ``fields`` (its ``extra`` fields)."""
        return any(
            r.getMessage() == message
            and all(getattr(r, "fields", {}).get(k) == v for k, v in fields.items())
            for r in self.records
        )

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Return once ``condition()`` holds, checking it now and after each logged line."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"never happened: {what} (last lines logged: {self.messages()[-5:]})"
            ) from None


@asynccontextmanager
async def watching(name: str = "ptt_server", level: int = logging.INFO) -> AsyncIterator[LogWatch]:
    """A :class:`LogWatch` on logger ``name`` (lowered to ``level`` meanwhile) for the block."""
    logger = logging.getLogger(name)
    watch = LogWatch(asyncio.get_running_loop())
    previous = logger.level
    logger.addHandler(watch)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)
