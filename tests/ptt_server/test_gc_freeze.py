"""GcFreezer: freezes the heap, and collects a frozen cycle only after logouts or a while.

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
        asyncio.get_running_loop(),
        interval=3600.0,
        after_sessions=3,
        every=3600.0 * 3,
        on_reclaim=reclaimed.append,
    )
    made.start()
    yield made
    made.close()
    gc.collect()
    assert gc.get_freeze_count() == 0


async def test_start_freezes_the_heap_and_close_thaws_it(freezer: GcFreezer) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_count()[0] < 700  # the young generation was emptied into the frozen one


async def test_a_frozen_cycle_stays_without_logouts(freezer: GcFreezer) -> None:
    cycle = garbage_cycle()
    freezer.tick()  # frozen with everything else
    gc.collect()
    freezer.tick()
    assert cycle() is not None and freezer.reclaims == 0


async def test_logouts_make_the_next_tick_collect_in_full(freezer: GcFreezer) -> None:
    cycle = garbage_cycle()
    freezer.tick()
    gc.collect()
    assert cycle() is not None  # frozen: no ordinary collection sees it
    for _ in range(2):
        freezer.session_ended()
    freezer.tick()
    assert cycle() is not None and freezer.reclaims == 0  # two logouts are not enough
    freezer.session_ended()
    freezer.tick()
    assert cycle() is None and freezer.reclaims == 1
    freezer.session_ended()
    freezer.tick()
    assert freezer.reclaims == 1  # the count starts over after a reclaim


async def test_without_logouts_a_full_collection_still_comes_every_while() -> None:
    made = GcFreezer(asyncio.get_running_loop(), interval=3600.0, every=3 * 3600.0)
    made.start()
    try:
        cycle = garbage_cycle()
        made.tick()
        made.tick()
        assert cycle() is not None and made.reclaims == 0
        made.tick()  # the third tick: `every` has passed
        assert cycle() is None and made.reclaims == 1
        made.tick()
        assert made.reclaims == 1
    finally:
        made.close()
        gc.collect()


async def test_pre_login_closes_collect_in_full_but_no_sooner_than_the_gap() -> None:
    """Issue 9's red team: connections that never log in also leave frozen cycles (bench.waves
    grew 0.55 MB a wave of 500 for as long as it ran), and anybody can open them, so they ask
    for a full collection after enough of them, at most once per gap."""
    made = GcFreezer(
        asyncio.get_running_loop(),
        interval=1.0,
        every=3600.0,
        after_connections=3,
        connections_gap=3.0,
    )
    made.start()
    try:
        cycle = garbage_cycle()
        made.tick()  # frozen
        for _ in range(3):
            made.connection_ended()
        made.tick()  # enough closes, but 2 s since the last collection (the start)
        assert cycle() is not None and made.reclaims == 0
        made.tick()
        assert cycle() is None and made.reclaims == 1
        for _ in range(100):  # a flood right after: no second pause within the gap
            made.connection_ended()
        made.tick()
        made.tick()
        assert made.reclaims == 1
        made.tick()
        assert made.reclaims == 2
    finally:
        made.close()
        gc.collect()
