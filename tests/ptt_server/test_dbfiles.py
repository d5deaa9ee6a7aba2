"""The store's files on disk (ptt_server.dbfiles, ptt_server.datadir) through ``Store.open``.

Crashes are real: the files are copied while the store that wrote them is still open, which
is what kill -9 or a power cut leaves. Every refusal is checked to leave each file, and its
mode, exactly as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptt_server.sqlite_wal import FRAME_HEADER_SIZE, HEADER_SIZE, check_wal, checksum, parse_header
from ptt_server.store import CorruptDatabaseError, InUseError, Store, StoreError

TEXTS = 283  # the count from the incident in issue 9


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mode) of everything under ``directory``, itself included."""
    found = {".": ("dir", stat.S_IMODE(directory.stat().st_mode))}
    for path in sorted(directory.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(directory))] = (digest, mode)
    return found


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def crash_copy(db: Path, directory: Path) -> Path:
    """Copy the database's files as they are now (the store still open) into ``directory``."""
    directory.mkdir(mode=0o700, parents=True)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copyfile(source, directory / (db.name + suffix))
            os.chmod(directory / (db.name + suffix), 0o600)
    return directory / db.name


def message_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


async def store_texts(store: Store, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        # Each one acknowledged: store_message returned once it was committed.
        assert await store.store_message(
            message_id(n), "alice", "bob", None, os.urandom(400), 1000.0 + n, ["bob"]
        )


def count_texts_with_sqlite(db: Path, scratch: Path) -> int:
    """What plain SQLite (what ptt-server did before) finds, on a throwaway copy."""
    copy = crash_copy(db, scratch)
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def wal_of(db: Path) -> Path:
    return Path(f"{db}-wal")


# Plain functions for the file operations: the async tests stay free of blocking calls.


def empty(path: Path) -> None:
    path.write_bytes(b"")


def remove(*paths: Path) -> None:
    for path in paths:
        path.unlink()


def exists(path: Path) -> bool:
    return path.exists()


def frame_offset(wal: bytes, index: int) -> int:
    page_size = parse_header(wal).page_size
    return HEADER_SIZE + index * (FRAME_HEADER_SIZE + page_size)


@pytest.fixture
async def crashed(tmp_path: Path) -> AsyncIterator[Path]:
    """A data directory as a crash left it, after TEXTS acknowledged texts; -shm included."""
    store = await Store.open(tmp_path / "live" / "fieldradio.db")
    await store_texts(store, TEXTS)
    copy = crash_copy(store.path, tmp_path / "crashed")
    await store.close()
    assert check_wal(wal_of(copy).read_bytes()).kept > 10, "the texts are in the log"
    yield copy


# --- the log ----------------------------------------------------------------------------------


async def test_an_undamaged_log_after_a_crash_keeps_every_acknowledged_text(
    crashed: Path,
) -> None:
    async with await Store.open(crashed) as store:
        assert len(await store.pending_for("bob", limit=TEXTS + 10)) == TEXTS


async def test_a_flipped_byte_in_the_log_after_a_crash_is_refused_and_changes_nothing(
    crashed: Path, tmp_path: Path
) -> None:
    wal = bytearray(wal_of(crashed).read_bytes())
    middle = check_wal(bytes(wal)).kept // 2
    wal[frame_offset(bytes(wal), middle) + FRAME_HEADER_SIZE + 200] ^= 0x10
    wal_of(crashed).write_bytes(wal)
    # What the damage means: plain SQLite silently drops acknowledged texts.
    assert count_texts_with_sqlite(crashed, tmp_path / "scratch") < TEXTS
    before = snapshot(crashed.parent)
    with pytest.raises(CorruptDatabaseError) as info:
        await Store.open(crashed)
    message = str(info.value)
    assert str(wal_of(crashed)) in message and "damaged" in message
    assert f"frame {middle + 1}" in message
    assert "backup" in message and "Nothing was modified" in message
    assert "\n" not in message
    assert snapshot(crashed.parent) == before


async def test_a_log_whose_pages_are_damaged_but_checksums_right_is_refused_by_quick_check(
    crashed: Path,
) -> None:
    """A log that is sound as a file but not as a database (a writer's bug, or a -wal left
    beside another main file) is caught by quick_check run with the log, read-only."""
    wal = bytearray(wal_of(crashed).read_bytes())
    header = parse_header(bytes(wal))
    kept = check_wal(bytes(wal)).kept
    last = frame_offset(bytes(wal), kept - 1)
    page = struct.unpack_from(">I", wal, last)[0]
    type_byte = last + FRAME_HEADER_SIZE + (100 if page == 1 else 0)
    wal[type_byte] = 0x77  # not a b-tree page type
    # Re-seal every frame so that the log itself is valid again.
    running = header.stored_checksum
    for index in range(kept):
        offset = frame_offset(bytes(wal), index)
        running = checksum(bytes(wal[offset : offset + 8]), header.big_endian, *running)
        body = bytes(
            wal[offset + FRAME_HEADER_SIZE : offset + FRAME_HEADER_SIZE + header.page_size]
        )
        running = checksum(body, header.big_endian, *running)
        struct.pack_into(">II", wal, offset + 16, *running)
    wal_of(crashed).write_bytes(wal)
    assert check_wal(bytes(wal)).safe
    before = snapshot(crashed.parent)
    with pytest.raises(CorruptDatabaseError) as info:
        await Store.open(crashed)
    assert "write-ahead log" in str(info.value) and "backup" in str(info.value)
    assert snapshot(crashed.parent) == before


async def test_an_empty_main_file_beside_its_log_is_refused_and_changes_nothing(
    crashed: Path,
) -> None:
    empty(crashed)
    before = snapshot(crashed.parent)
    with pytest.raises(CorruptDatabaseError) as info:
        await Store.open(crashed)
    message = str(info.value)
    assert "is empty" in message and wal_of(crashed).name in message
    assert "backup" in message and "move all of them away" in message
    assert snapshot(crashed.parent) == before


@pytest.mark.parametrize("left", ["-wal", "-shm"])
async def test_a_missing_main_file_beside_its_log_or_index_is_refused_and_changes_nothing(
    crashed: Path, left: str
) -> None:
    remove(crashed, *(Path(f"{crashed}{suffix}") for suffix in {"-wal", "-shm"} - {left}))
    before = snapshot(crashed.parent)
    with pytest.raises(CorruptDatabaseError) as info:
        await Store.open(crashed)
    assert "is missing" in str(info.value) and f"{crashed.name}{left}" in str(info.value)
    assert snapshot(crashed.parent) == before
    assert not exists(crashed)


async def test_a_log_without_its_index_is_checked_too(crashed: Path) -> None:
    """No -shm (a backup tool skipped it): the read-only check must still see the log."""
    remove(Path(f"{crashed}-shm"))
    async with await Store.open(crashed) as store:
        assert len(await store.pending_for("bob", limit=TEXTS + 10)) == TEXTS


async def test_a_crash_in_the_middle_of_a_transaction_opens_with_the_committed_data(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "live" / "fieldradio.db")
    await store_texts(store, 20)
    # A second connection runs a big transaction the crash cuts short: a tiny cache makes
    # SQLite spill it into the log, and rewrite spilled pages in place.
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("PRAGMA cache_size = 5")
    other.execute("BEGIN IMMEDIATE")
    for n in range(100, 400):
        other.execute(
            "INSERT INTO messages VALUES (?, 'carol', 'bob', NULL, ?, 1.0)",
            (message_id(n), os.urandom(400)),
        )
    other.execute("UPDATE messages SET sealed = zeroblob(300) WHERE from_user = 'carol'")
    copy = crash_copy(store.path, tmp_path / "crashed")
    other.execute("ROLLBACK")
    other.close()
    await store.close()
    verdict = check_wal(wal_of(copy).read_bytes())
    assert verdict.kept < verdict.frames, "the cut-short transaction is in the log"
    async with await Store.open(copy) as reopened:
        assert len(await reopened.pending_for("bob", limit=500)) == 20


async def test_a_restarted_log_with_old_frames_behind_opens(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "live" / "fieldradio.db")
    await store_texts(store, 40)
    other = sqlite3.connect(store.path, isolation_level=None)
    assert other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 0
    other.close()
    await store_texts(store, 2, first=1000)  # restarts the log over the old frames
    copy = crash_copy(store.path, tmp_path / "crashed")
    await store.close()
    wal = wal_of(copy).read_bytes()
    verdict = check_wal(wal)
    assert verdict.kept < verdict.frames, "old frames lie behind the new ones"
    async with await Store.open(copy) as reopened:
        assert len(await reopened.pending_for("bob", limit=500)) == 42


# --- modes and owners ---------------------------------------------------------------------------


async def test_new_database_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "fieldradio.db"
    old_umask = os.umask(0o022)
    try:
        async with await Store.open(db) as store:
            await store_texts(store, 1)
            assert mode_of(db.parent) == 0o700
            for suffix in ("", "-wal", "-shm"):
                assert mode_of(Path(f"{db}{suffix}")) == 0o600, suffix
    finally:
        os.umask(old_umask)


async def test_loose_modes_are_narrowed_and_logged(
    crashed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.chmod(crashed.parent, 0o755)
    for suffix in ("", "-wal", "-shm"):
        os.chmod(f"{crashed}{suffix}", 0o644)
    with caplog.at_level(logging.WARNING, logger="ptt_server"):
        async with await Store.open(crashed):
            pass
    assert mode_of(crashed.parent) == 0o700
    assert mode_of(crashed) == 0o600
    narrowed = [r for r in caplog.records if r.getMessage() == "narrowed file permissions"]
    assert {r.fields["path"] for r in narrowed} == {  # type: ignore[attr-defined]
        str(crashed.parent),
        *(f"{crashed}{suffix}" for suffix in ("", "-wal", "-shm")),
    }


async def test_files_of_another_user_are_refused_and_unchanged(
    crashed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chmod(crashed, 0o644)  # looser too: it must not be narrowed either
    before = snapshot(crashed.parent)
    owner = os.stat(crashed).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # we now run as someone else
    with pytest.raises(StoreError) as info:
        await Store.open(crashed)
    assert f"uid {owner}" in str(info.value) and "chown" in str(info.value)
    assert snapshot(crashed.parent) == before


# --- one server per directory ---------------------------------------------------------------


async def test_a_second_exclusive_store_is_refused_naming_the_directory_and_holder(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "fieldradio.db"
    first = await Store.open(db, exclusive=True)
    try:
        with pytest.raises(InUseError) as info:
            await Store.open(db, exclusive=True)
        message = str(info.value)
        assert str(db.parent) in message and f"pid {os.getpid()}" in message
        assert "\n" not in message
        # ptt-admin opens without the lock and works beside the server.
        async with await Store.open(db) as admin:
            await admin.create_channel("alpha", 1.0)
    finally:
        await first.close()
    async with await Store.open(db, exclusive=True) as again:  # released with the store
        assert [c.name for c in await again.list_channels()] == ["alpha"]


async def test_a_refused_exclusive_open_does_not_keep_the_lock(crashed: Path) -> None:
    empty(crashed)  # refused: an empty main file beside its log
    with pytest.raises(CorruptDatabaseError):
        await Store.open(crashed, exclusive=True)
    remove(wal_of(crashed), Path(f"{crashed}-shm"))
    async with await Store.open(crashed, exclusive=True):
        pass
