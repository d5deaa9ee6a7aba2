"""Schema migrations (ptt_server.store.schema), on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ptt_server.store import Store
from ptt_server.store.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    NewerSchemaError,
    apply_migrations,
)
from tests.ptt_server.test_store_fixtures import (
    db_path_fixture,  # noqa: F401 (fixture)
    read_file,
)


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
    assert apply_migrations(conn, MIGRATIONS[:2]) == [2]
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


def test_migration_to_v3_indexes_bursts_by_talker(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, MIGRATIONS[:2]) == [1, 2]
    assert apply_migrations(conn, MIGRATIONS[:3]) == [3]
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "bursts_by_talker_time" in names
    conn.close()


def test_migration_to_v4_makes_every_stored_alert_an_emergency(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, MIGRATIONS[:3]) == [1, 2, 3]
    conn.execute(
        "INSERT INTO emergencies (alert_id, user_id, raised_at, updated_at) VALUES (?, ?, ?, ?)",
        (b"old", "alice", 1.0, 1.0),
    )
    assert apply_migrations(conn, MIGRATIONS[:4]) == [4]
    assert conn.execute("SELECT kind FROM emergencies").fetchall() == [("emergency",)]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE emergencies SET kind = 'drill'")
    conn.close()


def test_migration_to_v6_logs_every_stored_burst_as_ordinary_talk(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, MIGRATIONS[:5]) == [1, 2, 3, 4, 5]
    conn.execute("INSERT INTO channels (name, created_at) VALUES ('patrol', 1.0)")
    conn.execute(
        "INSERT INTO bursts (channel_id, burst_id, talker, priority, started_at)"
        " VALUES (1, 1, 'alice', 1, 1.0)"
    )
    assert apply_migrations(conn, MIGRATIONS[:6]) == [6]
    assert conn.execute("SELECT broadcast FROM bursts").fetchall() == [(0,)]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE bursts SET broadcast = 2")
    conn.close()
