"""Tests for ptt_server.store and ptt_server.schema, on real SQLite files."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptt_server.schema import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    NewerSchemaError,
    apply_migrations,
)
from ptt_server.store import (
    DEFAULT_MESSAGE_RETENTION_S,
    BurstFrame,
    ConflictError,
    CorruptDatabaseError,
    ForeignDatabaseError,
    NotFoundError,
    Presence,
    SchemaTooNewError,
    StaleVersionError,
    Store,
    StoreError,
    User,
)

DAY = 24 * 3600.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "fieldradio.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(db_path)
    try:
        yield s
    finally:
        await s.close()


def make_user(user_id: str, serial: int = 1, fp: bytes | None = None) -> User:
    return User(
        user_id=user_id,
        display_name=user_id.title(),
        role="officer",
        device_id=f"{user_id}-phone",
        credential=b"cred:" + user_id.encode(),
        fingerprint=fp if fp is not None else hashlib.sha256(user_id.encode()).digest(),
        serial=serial,
        enrolled_at=1000.0 + serial,
    )


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read_file(path: Path) -> bytes:
    return path.read_bytes()


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


# --- opening, pragmas, lifecycle ------------------------------------------------------------


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


async def test_close_is_idempotent_and_later_calls_fail(db_path: Path) -> None:
    s = await Store.open(db_path)
    pending = asyncio.ensure_future(s.create_channel("queued-before-close", 1.0))
    await asyncio.sleep(0)  # let the call reach the store thread's queue
    await asyncio.gather(s.close(), s.close())
    await s.close()
    assert s.closed
    assert await pending >= 1  # queued work is finished, not dropped
    with pytest.raises(StoreError, match="closed"):
        await s.list_channels()
    async with await Store.open(db_path) as s2:
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


# --- refusing files -----------------------------------------------------------------------


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


# --- migrations ---------------------------------------------------------------------------


async def test_version_zero_file_without_tables_is_migrated(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA page_size = 1024")
    raw.execute("VACUUM")  # writes a real header: a database with no tables at version 0
    raw.close()
    assert len(read_file(db_path)) > 0
    async with await Store.open(db_path) as s:
        ch = await s.create_channel("alpha", 1.0)
        assert (await s.get_channel(ch)) is not None
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    raw.close()


def _v1_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, MIGRATIONS[:1]) == [1]
    conn.execute("INSERT INTO channels (name, created_at) VALUES ('alpha', 1.0)")
    conn.close()


def test_migration_from_v1_to_a_later_version_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(path)
    later = Migration(
        version=2,
        summary="channel colour",
        statements=(
            "ALTER TABLE channels ADD COLUMN colour TEXT NOT NULL DEFAULT 'red'",
            "CREATE INDEX channels_by_colour ON channels (colour)",
        ),
    )
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, (*MIGRATIONS[:1], later)) == [2]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT name, colour FROM channels").fetchall() == [("alpha", "red")]
    assert apply_migrations(conn, (*MIGRATIONS[:1], later)) == []  # already current
    conn.close()


def test_failed_migration_rolls_back_to_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(path)
    broken = Migration(
        version=2,
        summary="broken",
        statements=(
            "ALTER TABLE channels ADD COLUMN colour TEXT",
            "CREATE INDEX nope ON no_such_table (x)",
        ),
    )
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, (*MIGRATIONS[:1], broken))
    assert not conn.in_transaction
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = [r[1] for r in conn.execute("PRAGMA table_info(channels)")]
    assert "colour" not in columns
    conn.close()


def test_apply_migrations_refuses_newer_file_and_bad_lists(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(NewerSchemaError):
        apply_migrations(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION + 1
    with pytest.raises(ValueError, match="expected 1"):
        apply_migrations(conn, (Migration(2, "gap", ()),))
    conn.close()


# --- users and revocations ----------------------------------------------------------------


async def test_users(store: Store) -> None:
    assert await store.get_user("alice") is None
    await store.put_user(make_user("bob"))
    await store.put_user(make_user("alice"))
    alice = await store.get_user("alice")
    assert alice == make_user("alice")
    assert [u.user_id for u in await store.list_users()] == ["alice", "bob"]
    assert await store.get_user_by_fingerprint(make_user("bob").fingerprint) == make_user("bob")
    assert await store.get_user_by_fingerprint(b"\x00" * 32) is None
    # Re-enrollment replaces the credential.
    new_fp = hashlib.sha256(b"alice-2").digest()
    await store.put_user(make_user("alice", serial=2, fp=new_fp))
    assert (await store.get_user("alice")) == make_user("alice", serial=2, fp=new_fp)
    assert await store.get_user_by_fingerprint(make_user("alice").fingerprint) is None


async def test_user_with_someone_elses_fingerprint_is_refused(store: Store) -> None:
    await store.put_user(make_user("alice"))
    with pytest.raises(ConflictError, match="already belongs to user 'alice'"):
        await store.put_user(make_user("mallory", fp=make_user("alice").fingerprint))
    assert await store.get_user("mallory") is None


async def test_revocations_keep_only_the_newest(store: Store) -> None:
    assert await store.get_revocations() is None
    assert not await store.is_revoked("alice", 7)
    await store.put_revocations(3, b"signed-v3", ["alice"], [7, 9])
    rl = await store.get_revocations()
    assert rl is not None
    assert (rl.version, rl.signed, rl.user_ids, rl.serials) == (
        3,
        b"signed-v3",
        frozenset({"alice"}),
        frozenset({7, 9}),
    )
    assert await store.is_revoked("alice", 1)
    assert await store.is_revoked("bob", 9)
    assert not await store.is_revoked("bob", 8)
    for stale in (3, 2):
        with pytest.raises(StaleVersionError, match="not newer than the stored version 3"):
            await store.put_revocations(stale, b"old", [], [])
    assert (await store.get_revocations()) == rl
    await store.put_revocations(4, b"signed-v4", ["carol"], [])
    assert not await store.is_revoked("alice", 7)  # the new list is complete, not a delta
    assert await store.is_revoked("carol", 0)


# --- channels, rosters, envelopes -----------------------------------------------------------


async def test_channels(store: Store) -> None:
    a = await store.create_channel("alpha", 10.0)
    b = await store.create_channel("bravo", 11.0)
    assert a != b and 1 <= a <= 2**32 - 1
    ch = await store.get_channel(b)
    assert ch is not None and (ch.channel_id, ch.name, ch.created_at) == (b, "bravo", 11.0)
    assert await store.channel_by_name("alpha") == await store.get_channel(a)
    assert await store.channel_by_name("charlie") is None
    assert await store.get_channel(999) is None
    assert [c.name for c in await store.list_channels()] == ["alpha", "bravo"]
    with pytest.raises(ConflictError, match="'alpha' is taken"):
        await store.create_channel("alpha", 12.0)
    with pytest.raises(StoreError, match="non-empty"):
        await store.create_channel("", 12.0)
    assert len(await store.list_channels()) == 2


async def test_roster_version_rule_and_memberships(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    b = await store.create_channel("bravo", 1.0)
    assert await store.get_roster(a) is None
    await store.put_roster(a, 1, b"roster-a1", ["alice", "bob"])
    await store.put_roster(b, 5, b"roster-b5", ["alice"])
    assert await store.channels_of("alice") == [a, b]
    assert await store.channels_of("bob") == [a]
    for stale in (1, 0):
        with pytest.raises(StaleVersionError, match="not newer than the stored version 1"):
            await store.put_roster(a, stale, b"evil", ["mallory"])
    roster = await store.get_roster(a)
    assert roster is not None
    assert (roster.version, roster.signed, roster.members) == (
        1,
        b"roster-a1",
        frozenset({"alice", "bob"}),
    )
    await store.put_roster(a, 2, b"roster-a2", ["bob", "carol"])
    assert await store.channels_of("alice") == [b]
    assert await store.channels_of("carol") == [a]
    with pytest.raises(NotFoundError, match="channel 77 does not exist"):
        await store.put_roster(77, 1, b"x", ["alice"])


async def test_newest_envelope_per_member(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    b = await store.create_channel("bravo", 1.0)
    await store.put_roster(a, 1, b"r", ["alice", "bob"])
    assert await store.put_envelopes(a, 1, {"alice": b"a1", "bob": b"b1"}, 10.0) == 2
    assert await store.put_envelopes(b, 4, {"alice": b"a-bravo-4"}, 11.0) == 1
    assert await store.put_envelopes(a, 2, {"alice": b"a2"}, 12.0) == 1
    # An envelope of an older epoch arriving late does not replace the newer one.
    assert await store.put_envelopes(a, 1, {"alice": b"a1-late", "bob": b"b1-again"}, 13.0) == 1
    got = {
        (e.channel_id, e.epoch, e.envelope, e.stored_at) for e in await store.envelopes_for("alice")
    }
    assert got == {(a, 2, b"a2", 12.0), (b, 4, b"a-bravo-4", 11.0)}
    assert [(e.epoch, e.envelope) for e in await store.envelopes_for("bob")] == [(1, b"b1-again")]
    with pytest.raises(NotFoundError):
        await store.put_envelopes(99, 1, {"alice": b"x"}, 14.0)


async def test_removed_member_loses_channel_envelope(store: Store) -> None:
    a = await store.create_channel("alpha", 1.0)
    await store.put_roster(a, 1, b"r1", ["alice", "bob"])
    await store.put_envelopes(a, 1, {"alice": b"a1", "bob": b"b1"}, 10.0)
    await store.put_roster(a, 2, b"r2", ["alice"])
    assert await store.envelopes_for("bob") == []
    assert [e.envelope for e in await store.envelopes_for("alice")] == [b"a1"]


# --- messages -----------------------------------------------------------------------------


async def test_messages_dedup_order_delivery_and_read(store: Store) -> None:
    ch = await store.create_channel("alpha", 1.0)
    # Inserted out of send order: pending_for must still return them by sent_at.
    assert await store.store_message(mid(2), "bob", "alice", None, b"s2", 200.0, ["alice"])
    assert await store.store_message(mid(1), "carol", None, ch, b"s1", 100.0, ["alice", "bob"])
    assert await store.store_message(mid(3), "bob", "alice", None, b"s3", 300.0, ["alice"])
    # Same id again (a client retry, even with other content): a no-op.
    assert not await store.store_message(mid(2), "bob", "dave", None, b"other", 999.0, ["dave"])
    assert await store.pending_for("dave") == []
    pending = await store.pending_for("alice")
    assert [(m.message_id, m.sealed, m.sent_at) for m in pending] == [
        (mid(1), b"s1", 100.0),
        (mid(2), b"s2", 200.0),
        (mid(3), b"s3", 300.0),
    ]
    assert (pending[0].to_channel, pending[0].to_user) == (ch, None)
    assert (pending[1].to_channel, pending[1].to_user) == (None, "alice")
    assert [m.message_id for m in await store.pending_for("alice", limit=2)] == [mid(1), mid(2)]

    assert await store.mark_delivered(mid(2), "alice", 400.0)
    assert not await store.mark_delivered(mid(2), "alice", 401.0)  # already delivered
    assert not await store.mark_delivered(mid(9), "alice", 401.0)  # unknown
    assert await store.mark_read(mid(3), "alice", 402.0)  # read implies delivered
    assert not await store.mark_read(mid(3), "alice", 403.0)
    assert [m.message_id for m in await store.pending_for("alice")] == [mid(1)]
    assert [m.message_id for m in await store.pending_for("bob")] == [mid(1)]
    d2 = await store.deliveries(mid(2))
    d3 = await store.deliveries(mid(3))
    assert [(d.recipient, d.delivered_at, d.read_at) for d in d2] == [("alice", 400.0, None)]
    assert [(d.recipient, d.delivered_at, d.read_at) for d in d3] == [("alice", 402.0, 402.0)]
    stored = await store.get_message(mid(2))
    assert stored is not None and stored.sealed == b"s2"


async def test_bad_messages_are_refused_without_change(store: Store) -> None:
    with pytest.raises(StoreError, match="16 bytes"):
        await store.store_message(b"short", "bob", "alice", None, b"s", 1.0, ["alice"])
    with pytest.raises(StoreError, match="exactly one"):
        await store.store_message(mid(1), "bob", "a", 1, b"s", 1.0, ["alice"])
    with pytest.raises(StoreError, match="exactly one"):
        await store.store_message(mid(1), "bob", None, None, b"s", 1.0, ["a"])
    with pytest.raises(StoreError, match="collection"):
        await store.store_message(mid(1), "bob", "alice", None, b"s", 1.0, "alice")
    assert await store.get_message(mid(1)) is None


async def test_prune_removes_old_direct_messages_only(store: Store) -> None:
    ch = await store.create_channel("alpha", 1.0)
    now = 100 * DAY
    old = now - DEFAULT_MESSAGE_RETENTION_S - 1
    await store.store_message(mid(1), "bob", "alice", None, b"old-direct", old, ["alice"])
    await store.store_message(mid(2), "bob", None, ch, b"old-channel", old, ["alice"])
    await store.store_message(mid(3), "bob", "alice", None, b"new-direct", now - DAY, ["alice"])
    assert await store.prune_messages(now) == 1
    assert await store.get_message(mid(1)) is None
    # Cascaded to the deliveries: this only happens with foreign_keys=ON.
    assert await store.deliveries(mid(1)) == []
    assert [m.message_id for m in await store.pending_for("alice")] == [mid(2), mid(3)]
    assert await store.prune_messages(now, include_channel_messages=True) == 1
    assert [m.message_id for m in await store.pending_for("alice")] == [mid(3)]


async def test_prune_messages_in_many_chunks(store: Store) -> None:
    for i in range(1200):
        await store.store_message(mid(i), "bob", "alice", None, b"s", float(i), ["alice"])
    assert await store.prune_messages(now=1100.0, retention_s=0.0) == 1100
    assert len(await store.pending_for("alice")) == 100


# --- emergencies --------------------------------------------------------------------------


async def outcome(s: Store, alert_id: bytes, user: str, ch: int | None, at: float) -> str:
    return (await s.raise_emergency(alert_id, user, ch, None, at)).outcome


async def test_emergency_lifecycle_survives_reopen(db_path: Path) -> None:
    s = await Store.open(db_path)
    ch = await s.create_channel("alpha", 1.0)
    assert (await s.raise_emergency(b"alert-1", "alice", ch, b"sealed-loc", 50.0)).outcome == (
        "created"
    )
    assert await outcome(s, b"alert-2", "bob", None, 40.0) == "created"
    assert await outcome(s, b"alert-3", "carol", ch, 60.0) == "created"
    assert await s.ack_emergency(b"alert-2", "dispatch-1", 70.0)
    assert not await s.ack_emergency(b"alert-2", "dispatch-2", 71.0)  # first ack wins
    assert await s.cancel_emergency(b"alert-3", "carol", 72.0)
    assert not await s.cancel_emergency(b"alert-3", "carol", 73.0)
    assert not await s.ack_emergency(b"alert-3", "dispatch-1", 74.0)  # cancelled already
    with pytest.raises(NotFoundError):
        await s.ack_emergency(b"nope", "dispatch-1", 75.0)
    with pytest.raises(NotFoundError):
        await s.raise_emergency(b"alert-4", "dave", 999, None, 76.0)
    # Pressing again after a cancel makes a new alert; a late retry of the cancelled one does not.
    assert await outcome(s, b"alert-3", "carol", ch, 77.0) == "closed"
    assert await outcome(s, b"alert-5", "carol", ch, 78.0) == "created"
    assert await s.cancel_emergency(b"alert-5", "carol", 79.0)
    await s.close()

    s = await Store.open(db_path)
    active = await s.active_emergencies()
    # Unacknowledged first, so a dispatcher's console never buries a fresh alert.
    assert [(e.alert_id, e.acknowledged) for e in active] == [
        (b"alert-1", False),
        (b"alert-2", True),
    ]
    first = active[0]
    assert (first.user_id, first.channel_id, first.sealed_location, first.raised_at) == (
        "alice",
        ch,
        b"sealed-loc",
        50.0,
    )
    assert (active[1].acked_by, active[1].acked_at) == ("dispatch-1", 70.0)
    cancelled = await s.get_emergency(b"alert-3")
    assert cancelled is not None and not cancelled.active
    assert (cancelled.cancelled_by, cancelled.cancelled_at) == ("carol", 72.0)
    await s.close()


async def test_a_press_with_a_fresh_id_updates_the_users_active_emergency(
    store: Store, db_path: Path
) -> None:
    ch = await store.create_channel("alpha", 1.0)
    other = await store.create_channel("bravo", 1.0)
    first = await store.raise_emergency(b"first", "alice", ch, b"loc-1", 10.0)
    assert first.outcome == "created"
    assert await store.ack_emergency(b"first", "disp", 11.0)
    for i in range(2, 301):  # issue 9: a radio sending alerts with fresh ids as fast as it can
        again = await store.raise_emergency(f"fresh-{i}".encode(), "alice", other, b"loc-2", 12.0)
        assert again.outcome == "updated"
    # Still one emergency, under its first id, on its first channel, with its ack; the newest
    # location and time; every press counted.
    assert [(e.alert_id, e.channel_id, e.acked_by) for e in await store.active_emergencies()] == [
        (b"first", ch, "disp")
    ]
    alert = again.alert
    assert (alert.sealed_location, alert.raised_at, alert.updated_at, alert.presses) == (
        b"loc-2",
        10.0,
        12.0,
        300,
    )
    assert await store.get_emergency(b"fresh-2") is None
    # A press without a location keeps the last one.
    assert (await store.raise_emergency(b"x", "alice", ch, None, 13.0)).alert.sealed_location == (
        b"loc-2"
    )
    # Somebody else's alert id changes nothing.
    foreign = await store.raise_emergency(b"first", "bob", ch, b"bob-loc", 14.0)
    assert (foreign.outcome, foreign.alert.user_id) == ("foreign", "alice")
    assert await store.active_emergencies() == [foreign.alert]
    # The database itself refuses a second active alert for a user (ptt-admin, old code).
    raw = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        raw.execute(
            "INSERT INTO emergencies (alert_id, user_id, raised_at) VALUES (x'01', 'alice', 1)"
        )
    raw.close()


def test_migration_to_v2_keeps_each_users_oldest_active_emergency(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, MIGRATIONS[:1]) == [1]
    rows = [
        (b"a-old", "alice", 10.0, None),
        (b"a-new", "alice", 20.0, None),
        (b"a-newer", "alice", 30.0, None),
        (b"a-done", "alice", 5.0, 6.0),
        (b"b-only", "bob", 15.0, None),
    ]
    conn.executemany(
        "INSERT INTO emergencies (alert_id, user_id, raised_at, cancelled_at) VALUES (?, ?, ?, ?)",
        rows,
    )
    assert apply_migrations(conn) == [2]
    got = conn.execute(
        "SELECT alert_id, cancelled_by, cancelled_at, updated_at, presses FROM emergencies"
        " ORDER BY raised_at"
    ).fetchall()
    assert got == [
        (b"a-done", None, 6.0, 5.0, 1),
        (b"a-old", None, None, 10.0, 1),
        (b"b-only", None, None, 15.0, 1),
        (b"a-new", None, 20.0, 20.0, 1),  # merged into a-old: closed, by nobody
        (b"a-newer", None, 30.0, 30.0, 1),
    ]
    conn.close()


# --- presence -----------------------------------------------------------------------------


async def test_presence(store: Store) -> None:
    assert await store.get_presence("alice") is None
    await store.put_presence(Presence("bob", "on scene", True, 10.0, b"loc"))
    await store.put_presence(Presence("alice", "available", True, 11.0))
    await store.put_presence(Presence("bob", "off duty", False, 12.0))
    assert await store.get_presence("bob") == Presence("bob", "off duty", False, 12.0, None)
    assert await store.all_presence() == [
        Presence("alice", "available", True, 11.0, None),
        Presence("bob", "off duty", False, 12.0, None),
    ]


# --- talk bursts --------------------------------------------------------------------------


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


# --- concurrency and the event loop -------------------------------------------------------


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


async def test_event_loop_keeps_running_during_a_large_write(store: Store) -> None:
    loop = asyncio.get_running_loop()
    ch = await store.create_channel("alpha", 1.0)
    key = await store.start_burst(ch, 1, "alice", 1, 1.0)
    frames = [(i, 0, os.urandom(100)) for i in range(100_000)]
    ticks: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.002)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    start = loop.time()
    assert await store.record_frames(key, frames) == len(frames)
    end = loop.time()
    stop.set()
    await beat

    during = [t for t in ticks if start <= t <= end]
    marks = [start, *during, end]
    longest_gap = max(b - a for a, b in itertools.pairwise(marks))
    # A write done on the loop thread would show no ticks and one gap as long as the write.
    assert len(during) >= 5, (len(during), end - start)
    assert longest_gap < (end - start) / 3, (longest_gap, end - start)


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


# --- measurement (run with -m bench) ------------------------------------------------------


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
