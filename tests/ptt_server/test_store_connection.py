"""Opening and closing a store, refusing files, and its one thread (ptt_server.store.connection).

The files are SQLite's; the tests of the thread and of closing run on both engines.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from ptt_server.store import (
    CorruptDatabaseError,
    ForeignDatabaseError,
    SchemaTooNewError,
    Store,
    StoreError,
)
from ptt_server.store.schema import APPLICATION_ID, LATEST_VERSION
from tests.ptt_server.test_store_fixtures import (
    db_path_fixture,  # noqa: F401 (fixture)
    mid,
    read_file,
    store_fixture,  # noqa: F401 (fixture)
    store_location_fixture,  # noqa: F401 (fixture)
    write_file,
)


def snapshot(directory: Path) -> dict[str, str]:
    """Name -> sha256 of every file in the directory (catches new -wal/-shm files too)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


async def populated_file(path: Path) -> None:
    """A real store file with enough data to span many pages."""
    s = await Store.open(path)
    ch = await s.create_channel("alpha", 1.0)
    key = await s.start_burst(ch, 1, "alice", 1, 2.0)
    await s.record_frames(key, [(i, 0, os.urandom(100)) for i in range(2000)])
    await s.close()


# --- opening, pragmas, lifecycle -------------------------------------------------------------


async def test_new_file_is_created_in_wal_mode_at_latest_version(db_path: Path) -> None:
    s = await Store.open(db_path)  # the parent directory does not exist yet
    await s.create_channel("alpha", 1.0)
    # Check from a second, independent connection while the store holds the file open.
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert other.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert other.execute("SELECT name FROM channels").fetchall() == [("alpha",)]
    finally:
        other.close()
    await s.close()


async def test_close_is_idempotent_and_later_calls_fail(store_location: Path | str) -> None:
    s = await Store.open(store_location)
    pending = asyncio.ensure_future(s.create_channel("queued-before-close", 1.0))
    await asyncio.sleep(0)  # let the call reach the store thread's queue
    await asyncio.gather(s.close(), s.close())
    await s.close()
    assert s.closed
    assert await pending >= 1  # queued work is finished, not dropped
    with pytest.raises(StoreError, match="closed"):
        await s.list_channels()
    async with await Store.open(store_location) as s2:
        assert [c.name for c in await s2.list_channels()] == ["queued-before-close"]
    assert s2.closed


async def test_empty_file_is_treated_as_new(db_path: Path) -> None:
    write_file(db_path, b"")
    async with await Store.open(db_path) as s:
        assert await s.create_channel("alpha", 1.0) == 1


async def test_commits_still_in_the_wal_survive_a_crash(db_path: Path, tmp_path: Path) -> None:
    s = await Store.open(db_path)
    ch = await s.create_channel("alpha", 1.0)
    assert (await s.raise_emergency(b"alert-1", "alice", ch, None, 5.0)).outcome == "created"
    # Copy the files while the store is still open: what a power cut or kill -9 leaves.
    crashed = tmp_path / "crashed" / db_path.name
    for suffix in ("", "-wal"):
        write_file(crashed.with_name(crashed.name + suffix), read_file(Path(f"{db_path}{suffix}")))
    await s.close()
    assert len(read_file(Path(f"{crashed}-wal"))) > 0  # the commits were only in the WAL
    async with await Store.open(crashed) as recovered:
        assert [c.name for c in await recovered.list_channels()] == ["alpha"]
        assert [e.alert_id for e in await recovered.active_emergencies()] == [b"alert-1"]


async def test_write_waits_for_then_reports_a_lock_held_by_another_process(db_path: Path) -> None:
    s = await Store.open(db_path, busy_timeout_s=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            await s.create_channel("alpha", 1.0)
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The failed write left no transaction open: the store carries on.
    assert await s.create_channel("alpha", 1.0) == 1
    await s.close()


# --- refusing files --------------------------------------------------------------------------


async def test_newer_schema_is_refused_and_file_unchanged(db_path: Path) -> None:
    await populated_file(db_path)
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 3}")
    raw.close()
    before = snapshot(db_path.parent)
    with pytest.raises(SchemaTooNewError) as info:
        await Store.open(db_path)
    message = str(info.value)
    assert str(db_path) in message
    assert f"schema version {LATEST_VERSION + 3}" in message
    assert f"knows up to {LATEST_VERSION}" in message
    assert "upgrade ptt-server or restore a backup" in message
    assert snapshot(db_path.parent) == before


async def test_garbage_file_is_refused_and_unchanged(db_path: Path) -> None:
    write_file(db_path, os.urandom(10_000))
    before = snapshot(db_path.parent)
    with pytest.raises(CorruptDatabaseError) as info:
        await Store.open(db_path)
    assert str(db_path) in str(info.value)
    assert "backup" in str(info.value) and "move it away" in str(info.value)
    assert snapshot(db_path.parent) == before


async def test_garbage_behind_a_valid_header_is_refused_and_unchanged(db_path: Path) -> None:
    write_file(db_path, b"SQLite format 3\x00" + os.urandom(8192))
    before = snapshot(db_path.parent)
    with pytest.raises(CorruptDatabaseError, match="Restore it from a backup"):
        await Store.open(db_path)
    assert snapshot(db_path.parent) == before


async def test_truncated_database_is_refused_and_unchanged(db_path: Path) -> None:
    await populated_file(db_path)
    data = read_file(db_path)
    assert len(data) > 100_000
    write_file(db_path, data[: len(data) // 2])
    before = snapshot(db_path.parent)
    with pytest.raises(CorruptDatabaseError) as info:
        await Store.open(db_path)
    assert str(db_path) in str(info.value)
    assert snapshot(db_path.parent) == before


async def test_damaged_page_is_refused_and_unchanged(db_path: Path) -> None:
    await populated_file(db_path)
    data = bytearray(read_file(db_path))
    page_size = int.from_bytes(data[16:18], "big")
    # Overwrite the last page (a b-tree page of burst_frames) with a wrong page type byte.
    last = len(data) - page_size
    data[last : last + 16] = b"\x77" * 16
    write_file(db_path, bytes(data))
    before = snapshot(db_path.parent)
    with pytest.raises(CorruptDatabaseError):
        await Store.open(db_path)
    assert snapshot(db_path.parent) == before


async def test_another_programs_database_is_refused_and_unchanged(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    raw.commit()
    raw.close()
    before = snapshot(db_path.parent)
    with pytest.raises(ForeignDatabaseError, match="another program"):
        await Store.open(db_path)
    assert snapshot(db_path.parent) == before


async def test_directory_in_place_of_file_is_refused(db_path: Path) -> None:
    os.makedirs(db_path)
    with pytest.raises(StoreError, match="not a regular file"):
        await Store.open(db_path)


# --- concurrency and the event loop ----------------------------------------------------------


async def test_concurrent_calls_from_many_tasks_are_all_applied(store: Store) -> None:
    async def worker(i: int) -> int:
        ch = await store.create_channel(f"ch-{i}", float(i))
        await store.store_message(mid(i), f"u{i}", "alice", None, b"s", float(i), ["alice"])
        key = await store.start_burst(ch, i, f"u{i}", 1, float(i))
        await store.record_frames(key, [(s, 0, b"f") for s in range(10)])
        return ch

    ids = await asyncio.gather(*(worker(i) for i in range(100)))
    assert len(set(ids)) == 100
    assert len(await store.list_channels()) == 100
    assert len(await store.pending_for("alice")) == 100
    for ch in ids:
        (burst,) = await store.recent_bursts(ch)
        assert burst.frame_count == 10


async def large_write(store: Store) -> tuple[int, list[tuple[int, int, bytes]]]:
    """A burst, and 100 000 frames to write to it in one call."""
    ch = await store.create_channel("alpha", 1.0)
    key = await store.start_burst(ch, 1, "alice", 1, 1.0)
    return key, [(i, 0, os.urandom(100)) for i in range(100_000)]


async def test_event_loop_keeps_running_during_a_large_write(store: Store) -> None:
    key, frames = await large_write(store)
    writing = asyncio.create_task(store.record_frames(key, frames))
    turns = 0
    while not writing.done():
        turns += 1
        await asyncio.sleep(0)  # one turn of the loop, counted
    assert writing.result() == len(frames)
    # A write done on the loop thread would leave the loop no turn until it was done; on the
    # store's thread the loop turns all along. Counted in turns, not seconds (that no turn
    # waits long is a bench: tests/bench/test_timing_goals.py).
    assert turns >= 5, turns


async def test_cancelled_write_is_all_or_nothing(store: Store) -> None:
    ch = await store.create_channel("alpha", 1.0)
    key = await store.start_burst(ch, 1, "alice", 1, 1.0)
    batch = [(i, 0, b"f" * 80) for i in range(5000)]
    task = asyncio.create_task(store.record_frames(key, batch))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The store thread finishes (or never started) the batch; either way no partial write.
    assert len(await store.burst_frames(key)) in (0, len(batch))
    assert await store.create_channel("bravo", 2.0) > ch


async def test_values_no_engine_can_store_are_refused_with_a_store_error(store: Store) -> None:
    """A lone surrogate (JSON can carry "\\udc80") has no UTF-8 form and an id past i64 is
    not an integer either engine stores: a StoreError, nothing written, the store goes on."""
    with pytest.raises(StoreError, match="not valid Unicode"):
        await store.create_channel("bad-\udc80", 1.0)
    with pytest.raises(StoreError, match="not valid Unicode"):
        await store.get_user("\udc80")
    with pytest.raises(StoreError, match="too large"):
        await store.get_channel(2**70)
    assert await store.list_channels() == []
    assert await store.create_channel("alpha", 1.0) >= 1
