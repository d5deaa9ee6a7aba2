"""ptt_server.sqlite_shm against the -shm and -wal files real SQLite leaves behind.

A crash is a copy of the three files taken while the connection that wrote them is still
open, which is what SIGKILL leaves (the index is shared memory backed by the file).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ptt_server.sqlite_shm import check_against_log, parse_shm
from ptt_server.sqlite_wal import FRAME_HEADER_SIZE, HEADER_SIZE, check_wal, parse_header


@dataclass
class Crash:
    wal: bytes
    shm: bytes


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints only when a test asks
    conn.execute("CREATE TABLE t (n INTEGER, pad BLOB)")
    yield conn
    conn.close()


def commit(conn: sqlite3.Connection, count: int) -> None:
    for n in range(count):
        conn.execute("INSERT INTO t VALUES (?, randomblob(900))", (n,))


def crash(tmp_path: Path) -> Crash:
    db = tmp_path / "x.db"
    return Crash(Path(f"{db}-wal").read_bytes(), Path(f"{db}-shm").read_bytes())


def kept(wal: bytes) -> int:
    verdict = check_wal(wal)
    assert verdict.safe
    return verdict.kept


def test_the_index_counts_what_the_log_committed(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    commit(writer, 20)
    files = crash(tmp_path)
    witness = parse_shm(files.shm)
    assert witness is not None
    assert witness.committed == kept(files.wal) > 20
    assert witness.backfilled == 0
    assert witness.salts == parse_header(files.wal).salts
    assert check_against_log(witness, files.wal, kept(files.wal)) == ""


def test_a_log_missing_frames_the_index_counted_is_a_loss(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    commit(writer, 20)
    files = crash(tmp_path)
    witness = parse_shm(files.shm)
    page = parse_header(files.wal).page_size
    cut = files.wal[: HEADER_SIZE + 10 * (FRAME_HEADER_SIZE + page)]
    assert "would find only" in check_against_log(witness, cut, kept(cut))
    assert "missing or empty" in check_against_log(witness, b"", 0)


def test_a_log_copied_into_the_database_can_go(writer: sqlite3.Connection, tmp_path: Path) -> None:
    commit(writer, 20)
    writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    files = crash(tmp_path)
    witness = parse_shm(files.shm)
    assert witness is not None and witness.backfilled == witness.committed > 0
    assert check_against_log(witness, b"", 0) == ""


def test_only_frames_not_yet_copied_count(writer: sqlite3.Connection, tmp_path: Path) -> None:
    commit(writer, 20)
    reader = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        # A reader of the log as it is keeps the next writer from restarting it after the
        # checkpoint, so the new frames come after the copied ones.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        commit(writer, 5)
        files = crash(tmp_path)
    finally:
        reader.close()
    witness = parse_shm(files.shm)
    assert witness is not None and 0 < witness.backfilled < witness.committed
    problem = check_against_log(witness, b"", 0)
    assert f"{witness.committed - witness.backfilled} of them not yet copied" in problem


def test_a_log_of_another_generation_is_a_loss(writer: sqlite3.Connection, tmp_path: Path) -> None:
    commit(writer, 20)
    old = crash(tmp_path)
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    commit(writer, 3)  # a restarted log: new salts
    new = crash(tmp_path)
    assert parse_header(new.wal).salts != parse_header(old.wal).salts
    witness = parse_shm(new.shm)
    assert "another one" in check_against_log(witness, old.wal, kept(old.wal))


def test_a_restarted_index_before_its_first_frame_claims_nothing(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    commit(writer, 20)
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = crash(tmp_path)
    assert files.wal == b""
    witness = parse_shm(files.shm)
    assert witness is None or witness.committed == 0
    assert check_against_log(witness, b"", 0) == ""


@pytest.mark.parametrize("offset", [0, 12, 16, 24, 32, 40])
def test_a_damaged_index_header_claims_nothing(
    writer: sqlite3.Connection, tmp_path: Path, offset: int
) -> None:
    commit(writer, 20)
    shm = bytearray(crash(tmp_path).shm)
    shm[offset] ^= 0x01
    assert parse_shm(bytes(shm)) is None


@pytest.mark.parametrize("data", [b"", b"\x00" * 136, b"\xff" * 200])
def test_short_or_blank_index_files_claim_nothing(data: bytes) -> None:
    assert parse_shm(data) is None
