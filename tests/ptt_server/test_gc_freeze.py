"""GcFreezer: freezes the heap, and collects a frozen cycle only once the frozen heap grew.

The real collector of this process: each test hands every frozen object back at the end.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

import pytest

from ptt_server.gc_freeze import GcFreezer


class Node:
    """A reference-cycle member (only the cyclic collector can free it)."""

    def __init__(self) -> None:
        self.other: Node | None = None


def garbage_cycle() -> weakref.ref[Node]:
    """Two objects that refer to each other and to nothing else: unreachable garbage."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
async def freezer() -> AsyncIterator[GcFreezer]:
    reclaimed: list[float] = []
    made = GcFreezer(
        asyncio.get_running_loop(), interval=3600.0, check_every=1, on_reclaim=reclaimed.append
    )
    made.start()
    yield made
    made.close()
    gc.collect()
    assert gc.get_freeze_count() == 0


async def test_start_freezes_the_heap_and_close_thaws_it(freezer: GcFreezer) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_count()[0] < 700  # the young generation was emptied into the frozen one


async def test_the_size_is_looked_at_only_every_check_every_ticks() -> None:
    made = GcFreezer(asyncio.get_running_loop(), interval=3600.0, check_every=3)
    made.start()
    try:
        cycle = garbage_cycle()
        made.tick()
        grown: list[list[int]] = [[] for _ in range(gc.get_freeze_count())]
        made.tick()
        assert cycle() is not None and made.reclaims == 0  # tick 2: not looked at
        made.tick()
        assert cycle() is None and made.reclaims == 1 and grown
    finally:
        made.close()
        gc.collect()


async def test_a_frozen_cycle_stays_while_the_heap_does_not_grow(freezer: GcFreezer) -> None:
    cycle = garbage_cycle()
    freezer.tick()  # frozen with everything else
    gc.collect()
    freezer.tick()
    assert cycle() is not None and freezer.reclaims == 0


async def test_growth_makes_the_next_tick_collect_in_full(freezer: GcFreezer) -> None:
    cycle = garbage_cycle()
    freezer.tick()
    gc.collect()
    assert cycle() is not None  # frozen: no ordinary collection sees it
    grown: list[list[int]] = [[] for _ in range(gc.get_freeze_count())]  # doubles, stays alive
    freezer.tick()
    assert cycle() is None and freezer.reclaims == 1
    assert gc.get_freeze_count() > len(grown)  # frozen again after the collection
    freezer.tick()
    assert freezer.reclaims == 1  # the baseline moved up with the heap
