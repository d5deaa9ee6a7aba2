"""HeapTrimmer: trims once churn pauses, or at the latest ``max_wait`` after it began.

The trimmer reads time from its loop and arms its timer with ``loop.call_at``; the tests give
it a loop whose clock they move (:class:`SteppedLoop`), so each pause and deadline is exact
and no test sleeps or depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from ptt_server.heap import HeapTrimmer, glibc_malloc_trim


class SteppedLoop:
    """The two things HeapTrimmer asks of a loop, ``time()`` and ``call_at()``, on a clock the
    test moves with :meth:`advance` (which runs what fell due, in deadline order)."""

    def __init__(self) -> None:
        self.now = 1024.0  # binary fractions of it stay exact
        self.timers: list[asyncio.TimerHandle] = []

    def time(self) -> float:
        return self.now

    def get_debug(self) -> bool:
        return False

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        """TimerHandle.cancel() reports here; :meth:`armed` skips cancelled handles."""

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self.as_loop(), context)
        self.timers.append(handle)
        return handle

    def as_loop(self) -> asyncio.AbstractEventLoop:
        """This, typed as the loop HeapTrimmer takes (it uses only the methods above)."""
        return cast(asyncio.AbstractEventLoop, self)

    def armed(self) -> list[float]:
        """When the timers still pending will run."""
        return sorted(h.when() for h in self.timers if not h.cancelled())

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, running every timer due by then."""
        end = self.now + seconds
        while due := sorted(
            (h for h in self.timers if not h.cancelled() and h.when() <= end),
            key=lambda h: h.when(),
        ):
            handle = due[0]
            self.timers.remove(handle)
            self.now = max(self.now, handle.when())
            handle._run()
        self.now = end


class Recorder:
    """Stands in for malloc_trim and says when it was called."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        return 1


def test_trims_once_after_enough_closes_and_a_pause() -> None:
    loop = SteppedLoop()
    trim = Recorder()
    trimmer = HeapTrimmer(loop.as_loop(), trim, after_closes=3, quiet=0.01, max_wait=10.0)
    for _ in range(2):
        trimmer.connection_closed()
    assert loop.armed() == []  # two closes are not worth a trim: nothing is even scheduled
    loop.advance(0.005)
    assert trim.calls == []
    trimmer.connection_closed()
    assert loop.armed() == [loop.now + 0.01]  # the third close: a trim once churn pauses
    loop.advance(0.009)
    assert trim.calls == []
    loop.advance(0.002)
    assert trim.calls == [0] and trimmer.trims == 1
    assert loop.armed() == []  # one trim, and the count starts again
    trimmer.close()


def test_a_close_during_the_pause_pushes_the_trim_back() -> None:
    loop = SteppedLoop()
    trim = Recorder()
    trimmer = HeapTrimmer(loop.as_loop(), trim, after_closes=1, quiet=1.0, max_wait=10.0)
    trimmer.connection_closed()
    loop.advance(0.5)
    trimmer.connection_closed()  # churn goes on: the pause restarts from here
    loop.advance(0.9)
    assert trim.calls == []
    loop.advance(0.2)
    assert trim.calls == [0]
    trimmer.close()


def test_sustained_churn_is_trimmed_by_max_wait() -> None:
    loop = SteppedLoop()
    trim = Recorder()
    trimmer = HeapTrimmer(loop.as_loop(), trim, after_closes=1, quiet=3600.0, max_wait=1 / 16)
    started = loop.now
    trimmed_at: list[float] = []
    for _ in range(16):  # a close every 1/128 s for 1/8 s: never the pause ``quiet`` asks for
        trimmer.connection_closed()
        loop.advance(1 / 128)
        if trim.calls and not trimmed_at:
            trimmed_at.append(loop.now - started)
    assert trimmed_at == [1 / 16]  # at max_wait after the first close, not later
    assert trimmer.trims >= 1
    trimmer.close()


def test_close_cancels_the_pending_trim() -> None:
    loop = SteppedLoop()
    trim = Recorder()
    trimmer = HeapTrimmer(loop.as_loop(), trim, after_closes=1, quiet=0.01)
    trimmer.connection_closed()
    trimmer.close()
    assert loop.armed() == []
    loop.advance(60.0)
    assert trim.calls == []


def test_no_trim_function_means_nothing_happens() -> None:
    loop = SteppedLoop()
    trimmer = HeapTrimmer(loop.as_loop(), None, after_closes=1)
    trimmer.connection_closed()
    assert loop.armed() == []
    loop.advance(3600.0)
    assert trimmer.trims == 0
    trimmer.close()


def test_glibc_trim_is_found_here_and_runs() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None  # the server's platform (Debian, glibc)
    assert trim(0) in (0, 1)
