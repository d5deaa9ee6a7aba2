"""Talk bursts and recordings in the store (ptt_server.store.bursts), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time

import pytest

from ptt_server.store import BurstFrame, NotFoundError, Store, StoreError
from tests.ptt_server.test_store_fixtures import (
    RawDatabase,
    raw_db_fixture,  # noqa: F401 (fixture)
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
)


async def test_bursts_and_recordings(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    b = await store.create_channel("bravo", 1.0)
    k1 = await store.start_burst(a, 11, "alice", 2, 100.0)
    k2 = await store.start_burst(a, 12, "bob", 3, 200.0)
    k3 = await store.start_burst(b, 13, "carol", 2, 150.0)
    frames = [(i, i % 2, bytes([i]) * 60) for i in range(50)]
    assert await store.record_frames(k1, frames[25:]) == 25
    assert await store.record_frames(k1, frames[:30]) == 25  # 25..29 are duplicates
    assert await store.record_frames(k2, [BurstFrame(0, 1, b"only")]) == 1
    await store.end_burst(k1, 1.0, "released")
    got = await store.burst_frames(k1)
    assert got == [BurstFrame(*f) for f in frames]

    recent = await store.recent_bursts(a)
    assert [(x.burst_key, x.talker, x.frame_count) for x in recent] == [
        (k2, "bob", 1),
        (k1, "alice", 50),
    ]
    assert (recent[1].duration, recent[1].outcome, recent[1].priority) == (1.0, "released", 2)
    assert (recent[0].duration, recent[0].outcome) == (None, None)
    assert [x.burst_key for x in await store.recent_bursts(a, limit=1)] == [k2]
    assert [x.burst_key for x in await store.recent_bursts(b)] == [k3]
    k4 = await store.start_burst(b, 14, "disp", 2, 160.0, broadcast=True)
    assert [(x.burst_key, x.broadcast) for x in await store.recent_bursts(b)] == [
        (k4, True),
        (k3, False),
    ]

    assert await store.prune_recordings(older_than=150.0) == 50
    assert await store.burst_frames(k1) == []
    assert await store.burst_frames(k2) == [BurstFrame(0, 1, b"only")]
    recent = await store.recent_bursts(a)
    assert [(x.burst_key, x.frame_count) for x in recent] == [(k2, 1), (k1, 0)]  # log kept
    assert await store.prune_recordings(older_than=150.0) == 0


async def test_burst_errors_change_nothing(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    with pytest.raises(NotFoundError, match="channel 5"):
        await store.start_burst(5, 1, "alice", 1, 1.0)
    with pytest.raises(NotFoundError, match="burst 42"):
        await store.record_frames(42, [(0, 0, b"x")])
    with pytest.raises(NotFoundError, match="burst 42"):
        await store.end_burst(42, 1.0, "released")
    key = await store.start_burst(a, 1, "alice", 1, 1.0)
    # A bad frame anywhere in the batch refuses the whole batch.
    with pytest.raises(StoreError, match="frame must be bytes"):
        await store.record_frames(key, [(0, 0, b"good"), (1, 0, "text")])  # type: ignore[list-item]
    with pytest.raises(StoreError, match="seq"):
        await store.record_frames(key, [(0, 0, b"good"), (2**70, 0, b"x")])
    assert await store.burst_frames(key) == []


async def test_prune_recordings_in_many_chunks(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    for i in range(1100):
        key = await store.start_burst(a, i, "alice", 1, float(i))
        await store.record_frames(key, [(0, 0, b"f"), (1, 0, b"g")])
    assert await store.prune_recordings(older_than=1050.0) == 2100
    kept = await store.recent_bursts(a, limit=2000)
    assert len(kept) == 1100
    assert sum(b.frame_count for b in kept) == 100


# --- measurement (run with -m bench) ---------------------------------------------------------


@pytest.mark.bench
async def test_record_frames_throughput(store: Store) -> None:
    ch = await store.create_channel("alpha", 1.0)
    payload = os.urandom(100)  # ~ a 20 ms Opus frame plus SFrame header and tag
    batches = 400
    keys = [await store.start_burst(ch, i, "alice", 1, float(i)) for i in range(batches // 25)]
    start = time.perf_counter()
    for b in range(batches):
        key = keys[b // 25]
        base = (b % 25) * 50
        await store.record_frames(key, [(base + i, 0, payload) for i in range(50)])
    elapsed = time.perf_counter() - start
    rate = batches * 50 / elapsed
    print(
        f"\nrecord_frames: {rate:,.0f} frames/s, {elapsed / batches * 1e3:.2f} ms per 50-frame batch"
    )
    assert rate > 10_000


async def test_last_heard_is_the_end_of_each_talkers_newest_burst(
    store: Store, raw_db: RawDatabase
) -> None:
    a = await store.create_channel("alpha", 1.0)
    b = await store.create_channel("bravo", 1.0)
    old = await store.start_burst(a, 1, "alice", 1, 100.0)
    await store.end_burst(old, 4.0, "released")
    new = await store.start_burst(b, 2, "alice", 1, 300.0)
    await store.end_burst(new, 2.5, "released")
    await store.start_burst(a, 3, "bob", 1, 400.0)  # still on the air: its start
    heard = await store.last_heard(["alice", "bob", "carol", "alice"])
    assert heard == {"alice": 302.5, "bob": 400.0}  # carol never talked
    query = (
        "SELECT started_at + COALESCE(duration, 0) FROM bursts"
        " WHERE talker = ? ORDER BY started_at DESC LIMIT 1"
    )
    if raw_db.engine == "sqlite":
        plan = raw_db.execute("EXPLAIN QUERY PLAN " + query, ("alice",))
    else:
        # A table this small is cheaper to scan; with scans priced out, the planner shows
        # the index it would seek in on a real log.
        raw_db.execute("SET enable_seqscan = off")
        plan = raw_db.execute("EXPLAIN " + query, ("alice",))
    assert "bursts_by_talker_time" in str(plan)  # a seek per user, not a scan of the log
