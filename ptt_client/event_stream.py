"""One stream of events for a radio's readers: a bounded queue and listeners.

:class:`EventStream` is what :class:`ptt_client.client.RadioClient` reports through: control
messages as they arrive and the events of :mod:`ptt_client.events`, in order. Readers either
take them from the queue (:meth:`EventStream.next_event`, :meth:`EventStream.wait_for`) or
are called for each (:meth:`EventStream.add_listener`, as the audio pipeline is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

__all__ = ["EVENT_QUEUE_LIMIT", "EventStream"]

T = TypeVar("T")

EVENT_QUEUE_LIMIT: Final = 4096
"""Events kept for :meth:`EventStream.wait_for` readers; older ones are dropped when nobody
reads."""


class EventStream:
    """Events queued for readers and handed to listeners as they happen."""

    def __init__(self, limit: int = EVENT_QUEUE_LIMIT) -> None:
        self._events: asyncio.Queue[object] = asyncio.Queue(limit)
        self._listeners: list[Callable[[object], None]] = []

    def add_listener(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(event)`` for every event as well (used by the audio pipeline)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[object], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _emit(self, event: object) -> None:
        if self._events.full():
            # Nobody reads the queue (a program that only uses listeners): keep the newest.
            self._events.get_nowait()
        self._events.put_nowait(event)
        for callback in list(self._listeners):
            callback(event)

    def _emit_all(self, found: Iterable[object]) -> None:
        for event in found:
            self._emit(event)

    async def next_event(self, timeout: float = 5.0) -> object:
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def wait_for(
        self, kind: type[T], predicate: Callable[[T], bool] = lambda _: True, timeout: float = 5.0
    ) -> T:
        """The next event of ``kind`` that satisfies ``predicate``; earlier ones are consumed."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                if isinstance(event, kind) and predicate(event):
                    return event

    def drain_events(self) -> list[object]:
        """Every event queued so far (for tests and tools that poll)."""
        drained = []
        while not self._events.empty():
            drained.append(self._events.get_nowait())
        return drained
