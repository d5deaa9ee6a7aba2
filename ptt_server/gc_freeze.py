"""Keeping the cyclic garbage collector's pauses off the relay's loop: freeze what has lived.

Why: with 2,448 sessions logged in (``bench.relay`` at 48 channels x 51 members) the server
holds about 400,000 GC-tracked objects, and CPython's collector walks a whole generation at
once while nothing else runs. Measured there (shared 2-core machine, 120,000 forwarded
packets/s offered): full (generation 2) collections of 114-1,070 ms and generation-1 ones of
15-132 ms while media flowed, against an 80 ms budget before the media socket's receive
buffer (2,400 datagrams/s in) overflows and datagrams are lost.

What: ``gc.freeze()`` moves every tracked object into a permanent generation that collections
skip, and costs O(1) (a list splice). Done every :data:`INTERVAL_S` seconds, collections only
walk what was made since: in the same run no server collection took over 5 ms.

The price: a reference cycle among frozen objects is not reclaimed while they stay frozen
(reference counting still frees everything else, which is most of it: a closed connection's
buffers go at once unless a cycle holds them). Cycles come mostly from ended sessions (their
tasks, connections and exceptions), so after :data:`RECLAIM_AFTER_SESSIONS` logouts a tick
unfreezes, runs one full collection and freezes again, and so it does after
:data:`RECLAIM_AFTER_CONNECTIONS` connections that closed before logging in (no sooner than
:data:`RECLAIM_CONNECTIONS_GAP_S` after the last collection: anybody can open those); for cycles from anywhere else, it does
so at the latest :data:`RECLAIM_EVERY_S` after the last one. Rules on the heap's growth
(CPython's own kind) were tried and dropped: "the frozen heap grew by half" made the login
wave's growth, which is live and not garbage, trigger a 388 ms collection in the middle of
the media that followed (and ``gc.get_freeze_count()`` walks the whole frozen list: 3.5 ms
for 400,000 objects). In steady state (media, keepalives) nothing fires for an hour, where
CPython's count of promoted objects never shrinks and brings a full pause every minute or so.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Final

INTERVAL_S: Final = 1.0
"""Seconds between freezes: short, so the young generations stay small between them."""
RECLAIM_AFTER_SESSIONS: Final = 500
"""Logouts since the last full collection that make the next tick run one."""
RECLAIM_EVERY_S: Final = 3600.0
"""Longest time between full collections: the bound on cycles that no logout made."""
RECLAIM_AFTER_CONNECTIONS: Final = 5000
"""Connections closed before logging in since the last full collection that make a tick run
one (each can leave a few KB of cycles inside websockets and asyncio: ``bench.waves`` grew
0.55 MB a wave of 500 without this, and stayed flat with it)."""
RECLAIM_CONNECTIONS_GAP_S: Final = 10.0
"""At least this long between full collections that pre-login closes ask for: anyone can
open connections, and a full collection pauses a busy relay (388 ms at 2,448 sessions), so
a flood costs it at most one such pause per gap."""


class GcFreezer:
    """Freezes the tracked heap every ``interval`` seconds on the loop (module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float = INTERVAL_S,
        after_sessions: int = RECLAIM_AFTER_SESSIONS,
        every: float = RECLAIM_EVERY_S,
        after_connections: int = RECLAIM_AFTER_CONNECTIONS,
        connections_gap: float = RECLAIM_CONNECTIONS_GAP_S,
        on_reclaim: Callable[[float], None] | None = None,
    ) -> None:
        """``on_reclaim(seconds)`` is told how long each full collection blocked the loop."""
        self._loop = loop
        self._interval = interval
        self._after_sessions = after_sessions
        self._ended = 0
        self._after_connections = after_connections
        self._connections = 0
        self._connections_gap_ticks = max(1, round(connections_gap / interval))
        self._every_ticks = max(1, round(every / interval))
        self._ticks = 0
        self._on_reclaim = on_reclaim
        self._timer: asyncio.TimerHandle | None = None
        self.reclaims = 0

    def start(self) -> None:
        """Freeze what startup made (the store's channels, rosters, keys) and keep freezing."""
        gc.freeze()
        self._schedule()

    def session_ended(self) -> None:
        """A logged-in session is gone (its cycles, if any, are frozen garbage now)."""
        self._ended += 1

    def connection_ended(self) -> None:
        """A connection closed before it logged in (its cycles, if any, are frozen garbage)."""
        self._connections += 1

    def tick(self) -> None:
        """Freeze what was made since the last tick; collect in full first after
        ``after_sessions`` logouts, or ``every`` seconds after the last time (what the timer
        runs)."""
        self._ticks += 1
        connections_due = (
            self._connections >= self._after_connections
            and self._ticks >= self._connections_gap_ticks
        )
        if (
            self._ended < self._after_sessions
            and self._ticks < self._every_ticks
            and not connections_due
        ):
            gc.freeze()
            return
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        seconds = time.perf_counter() - started
        self._ended = self._ticks = self._connections = 0
        self.reclaims += 1
        if self._on_reclaim is not None:
            self._on_reclaim(seconds)

    def _fire(self) -> None:
        self._timer = None
        self.tick()
        self._schedule()

    def _schedule(self) -> None:
        self._timer = self._loop.call_later(self._interval, self._fire)

    def close(self) -> None:
        """Stop freezing and hand the frozen objects back to the collector."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.unfreeze()
