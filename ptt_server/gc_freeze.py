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
buffers go at once unless a cycle holds them). So when the frozen heap has grown by
:data:`RECLAIM_GROWTH` since the last reclaim (the live count: freed objects leave it; looked
at every :data:`CHECK_EVERY` ticks), the tick unfreezes, runs one full collection and freezes
again. That is CPython's own
"full collection once the old heap grew by a quarter" rule, but on the live size: in steady
state (media, keepalives) the frozen heap does not grow and there is no full pause at all,
where CPython's count of promoted objects never shrinks and makes one every minute or so.
Login waves still pay full collections, a few per doubling of the heap.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Final

INTERVAL_S: Final = 1.0
"""Seconds between freezes: short, so the young generations stay small between them."""
CHECK_EVERY: Final = 30
"""Ticks between looks at the frozen heap's size: ``gc.get_freeze_count()`` walks the whole
frozen list (3.5 ms for 400,000 objects, measured), so not on every tick."""
RECLAIM_GROWTH: Final = 0.5
"""Growth of the frozen heap (a fraction of its size after the last reclaim) that makes the
next tick collect it in full: leaked cycles stay under half the live heap."""


class GcFreezer:
    """Freezes the tracked heap every ``interval`` seconds on the loop (module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float = INTERVAL_S,
        growth: float = RECLAIM_GROWTH,
        check_every: int = CHECK_EVERY,
        on_reclaim: Callable[[float], None] | None = None,
    ) -> None:
        """``on_reclaim(seconds)`` is told how long each full collection blocked the loop."""
        self._loop = loop
        self._interval = interval
        self._growth = growth
        self._check_every = check_every
        self._ticks = 0
        self._on_reclaim = on_reclaim
        self._timer: asyncio.TimerHandle | None = None
        self._baseline = 0
        self.reclaims = 0

    def start(self) -> None:
        """Freeze what startup made (the store's channels, rosters, keys) and keep freezing."""
        gc.freeze()
        self._baseline = gc.get_freeze_count()
        self._schedule()

    def tick(self) -> None:
        """Freeze what was made since the last tick; every ``check_every`` ticks, if the frozen
        heap has outgrown its last reclaim by ``growth``, collect it in full and freeze again
        (what the timer runs)."""
        gc.freeze()
        self._ticks += 1
        if self._ticks % self._check_every:
            return
        if gc.get_freeze_count() <= self._baseline * (1 + self._growth):
            return
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        seconds = time.perf_counter() - started
        self._baseline = gc.get_freeze_count()
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
