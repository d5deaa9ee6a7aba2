"""Giving the heap memory that closed connections leave behind back to the system (glibc).

Why: a TLS connection costs the server about 300 KB of heap while it is open (uvloop's 256 KiB
SSL read buffer, OpenSSL's record buffers and handshake state, the WebSocket objects), all
freed when it closes. glibc keeps the freed pages inside its heap, and the small long-lived
allocations made meanwhile pin the top of the heap, so it never shrinks and the pages of
each new wave land elsewhere in it: with 500 connections at a time the heap grew to 157 MB
with 4 MB of it in use at rest (``mallinfo2``), and ``bench.waves`` (20 waves of 500) took
the server from 48 to 134-154 MB of RSS, still rising. ``malloc_trim(0)`` hands free pages
back (``madvise(MADV_DONTNEED)`` inside the heap, not only at its top): the same run ends at
55-57 MB. ``MALLOC_ARENA_MAX=2`` (128 MB), a fixed ``MALLOC_MMAP_THRESHOLD_`` (113 MB) and
TLS session tickets off (126-150 MB) did not help: one thread does all this, and tickets
are not where the memory goes.

When: trimming walks the whole heap (1.4-11 ms with 2000 sessions held), so it runs
only after connection churn: once ``after_closes`` connections have closed, when closes have
paused for ``quiet`` seconds, or at the latest ``max_wait`` seconds after the first of them
(a sustained flood still gets trimmed). Nothing happens where there is no glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Final

AFTER_CLOSES: Final = 64
"""Closed connections that make a trim worth its cost."""
QUIET_S: Final = 1.0
"""Trim once no connection has closed for this long..."""
MAX_WAIT_S: Final = 10.0
"""...or this long after the first close since the last trim, whichever comes first."""


def glibc_malloc_trim() -> Callable[[int], int] | None:
    """``malloc_trim`` from the C library, or None when it has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    function: Callable[[int], int] = trim
    return function


class HeapTrimmer:
    """Calls ``trim(0)`` after connection churn, on the event loop (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        trim: Callable[[int], int] | None,
        *,
        after_closes: int = AFTER_CLOSES,
        quiet: float = QUIET_S,
        max_wait: float = MAX_WAIT_S,
        on_trim: Callable[[float], None] | None = None,
    ) -> None:
        """``on_trim(seconds)`` is told how long each trim blocked the loop (for metrics)."""
        self._loop = loop
        self._trim = trim
        self._after_closes = after_closes
        self._quiet = quiet
        self._max_wait = max_wait
        self._closed = 0
        self._first_close = 0.0
        self._last_close = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._on_trim = on_trim
        self.trims = 0
        self.trim_seconds = 0.0
        """Time spent inside ``malloc_trim`` (the event loop was blocked that long)."""

    def connection_closed(self) -> None:
        """One connection that had started TLS is gone."""
        if self._trim is None:
            return
        now = self._loop.time()
        if self._closed == 0:
            self._first_close = now
        self._closed += 1
        self._last_close = now
        if self._closed >= self._after_closes and self._timer is None:
            self._timer = self._loop.call_at(self._due(), self._fire)

    def _due(self) -> float:
        return min(self._last_close + self._quiet, self._first_close + self._max_wait)

    def _fire(self) -> None:
        self._timer = None
        due = self._due()
        if self._loop.time() < due:  # more closes came meanwhile: wait for the pause
            self._timer = self._loop.call_at(due, self._fire)
            return
        self._closed = 0
        assert self._trim is not None
        started = time.perf_counter()
        self._trim(0)
        seconds = time.perf_counter() - started
        self.trim_seconds += seconds
        self.trims += 1
        if self._on_trim is not None:
            self._on_trim(seconds)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
