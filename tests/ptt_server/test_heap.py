"""HeapTrimmer: trims once churn pauses, or at the latest ``max_wait`` after it began."""

from __future__ import annotations

import asyncio

from ptt_server.heap import HeapTrimmer, glibc_malloc_trim


class Recorder:
    """Stands in for malloc_trim and says when it was called."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        self.called.set()
        return 1


async def test_trims_once_after_enough_closes_and_a_pause() -> None:
    trim = Recorder()
    trimmer = HeapTrimmer(asyncio.get_running_loop(), trim, after_closes=3, quiet=0.01)
    for _ in range(2):
        trimmer.connection_closed()
    await asyncio.sleep(0)
    assert trim.calls == []  # two closes are not worth a trim
    trimmer.connection_closed()
    async with asyncio.timeout(5):
        await trim.called.wait()
    assert trim.calls == [0] and trimmer.trims == 1
    trimmer.close()


async def test_sustained_churn_is_trimmed_by_max_wait() -> None:
    trim = Recorder()
    trimmer = HeapTrimmer(
        asyncio.get_running_loop(), trim, after_closes=1, quiet=3600.0, max_wait=0.05
    )

    async def churn() -> None:
        while True:  # never pauses for `quiet`
            trimmer.connection_closed()
            await asyncio.sleep(0.005)

    task = asyncio.create_task(churn())
    try:
        async with asyncio.timeout(5):
            await trim.called.wait()
    finally:
        task.cancel()
        trimmer.close()
    assert trimmer.trims >= 1


async def test_no_trim_function_means_nothing_happens() -> None:
    trimmer = HeapTrimmer(asyncio.get_running_loop(), None, after_closes=1)
    trimmer.connection_closed()
    assert trimmer.trims == 0
    trimmer.close()


def test_glibc_trim_is_found_here_and_runs() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None  # the server's platform (Debian, glibc)
    assert trim(0) in (0, 1)
