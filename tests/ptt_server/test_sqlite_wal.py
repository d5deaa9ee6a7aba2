"""Tests for ptt_server.sqlite_wal on -wal files that SQLite itself wrote, then damaged.

Each log is copied while its connection is still open: what a crash (kill -9, power cut)
leaves on disk. SQLite's own recovery is the reference: ``PRAGMA wal_checkpoint`` on a
copy reports how many frames it kept.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptt_server.sqlite_wal import (
    FRAME_HEADER_SIZE,
    HEADER_SIZE,
    check_wal,
    checksum,
    parse_header,
)

PAGE_SIZE = 1024  # small pages keep the logs, and each hypothesis example, small
FRAME_SIZE = FRAME_HEADER_SIZE + PAGE_SIZE


@dataclass(frozen=True)
class Crash:
    """The main file and the -wal file as a crash left them."""

    main: bytes
    wal: bytes

    @property
    def frames(self) -> int:
        return (len(self.wal) - HEADER_SIZE) // FRAME_SIZE

    def commits(self) -> list[int]:
        """0-based indexes of the frames of the current salts that end a transaction."""
        salts = self.wal[16:24]
        found = []
        for i in range(self.frames):
            offset = HEADER_SIZE + i * FRAME_SIZE
            commit = struct.unpack_from(">I", self.wal, offset + 4)[0]
            if commit and self.wal[offset + 8 : offset + 16] == salts:
                found.append(i)
        return found

    def committed_end(self) -> int:
        """The byte offset just past the last frame a commit covers."""
        return HEADER_SIZE + check_wal(self.wal).kept * FRAME_SIZE


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints only where a test asks
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    return conn


def _commit_rows(conn: sqlite3.Connection, first: int, count: int, size: int = 300) -> None:
    for k in range(first, first + count):
        conn.execute("INSERT INTO t VALUES (?, ?)", (k, os.urandom(size)))


def _crash(path: Path) -> Crash:
    return Crash(path.read_bytes(), Path(f"{path}-wal").read_bytes())


def make_committed(directory: Path) -> Crash:
    """Twenty committed transactions, the last frame a commit."""
    conn = _connect(directory / "committed.db")
    _commit_rows(conn, 0, 20)
    crash = _crash(directory / "committed.db")
    conn.close()
    return crash


def make_torn_tail(directory: Path) -> Crash:
    """Committed transactions, then a big one cut short by the crash.

    A tiny page cache makes SQLite spill the open transaction into the log; updating the
    spilled rows makes it rewrite some of those frames in place, leaving their checksums
    wrong until a commit that never comes (wal.c: walRewriteChecksums).
    """
    conn = _connect(directory / "torn.db")
    _commit_rows(conn, 0, 10)
    conn.execute("PRAGMA cache_size = 5")
    conn.execute("BEGIN")
    _commit_rows(conn, 100, 120, size=200)
    conn.execute("UPDATE t SET v = zeroblob(150) WHERE k >= 100")
    crash = _crash(directory / "torn.db")
    conn.execute("ROLLBACK")
    conn.close()
    return crash


def make_restarted(directory: Path) -> Crash:
    """A log restarted after a full checkpoint: new frames, then the old ones behind them."""
    conn = _connect(directory / "restarted.db")
    _commit_rows(conn, 0, 40)
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0
    _commit_rows(conn, 100, 5)  # the first write after a full checkpoint restarts the log
    crash = _crash(directory / "restarted.db")
    conn.close()
    return crash


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Crash]:
    directory = tmp_path_factory.mktemp("wal")
    return {
        "committed": make_committed(directory),
        "torn_tail": make_torn_tail(directory),
        "restarted": make_restarted(directory),
    }


@pytest.fixture(scope="module")
def sqlite_keeps(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Crash], int | None]:
    """How many frames SQLite's recovery keeps of a log (None: it refuses to open it)."""
    directory = tmp_path_factory.mktemp("recover")

    def keeps(crash: Crash) -> int | None:
        db = directory / "copy.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.write_bytes(crash.main)
        Path(f"{db}-wal").write_bytes(crash.wal)
        conn = sqlite3.connect(db)
        try:
            return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        except sqlite3.Error:
            return None
        finally:
            conn.close()

    return keeps


def flipped(data: bytes, position: int, xor: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= xor
    return bytes(damaged)


# --- what SQLite writes in normal operation starts normally --------------------------------


def test_a_committed_log_is_kept_whole(
    logs: dict[str, Crash], sqlite_keeps: Callable[[Crash], int | None]
) -> None:
    crash = logs["committed"]
    verdict = check_wal(crash.wal)
    assert verdict.safe, verdict.problem
    assert verdict.frames == crash.frames == verdict.kept
    assert crash.commits()[-1] == crash.frames - 1
    assert sqlite_keeps(crash) == verdict.kept


def test_a_transaction_cut_short_by_a_crash_is_not_damage(
    logs: dict[str, Crash], sqlite_keeps: Callable[[Crash], int | None]
) -> None:
    crash = logs["torn_tail"]
    verdict = check_wal(crash.wal)
    assert verdict.safe, verdict.problem
    assert verdict.kept == crash.commits()[-1] + 1 < verdict.frames
    assert sqlite_keeps(crash) == verdict.kept
    # The case is really exercised: SQLite rewrote a spilled frame in place, so the chain
    # of checksums breaks inside the uncommitted tail.
    header = parse_header(crash.wal)
    running = header.stored_checksum
    broken = []
    for i in range(crash.frames):
        offset = HEADER_SIZE + i * FRAME_SIZE
        running = checksum(crash.wal[offset : offset + 8], header.big_endian, *running)
        running = checksum(
            crash.wal[offset + FRAME_HEADER_SIZE : offset + FRAME_SIZE], header.big_endian, *running
        )
        stored = struct.unpack_from(">II", crash.wal, offset + 16)
        if running != stored:
            broken.append(i)
        running = stored
    assert broken and min(broken) >= verdict.kept, broken


def test_a_restarted_log_with_old_frames_behind_is_not_damage(
    logs: dict[str, Crash], sqlite_keeps: Callable[[Crash], int | None]
) -> None:
    crash = logs["restarted"]
    verdict = check_wal(crash.wal)
    assert verdict.safe, verdict.problem
    assert sqlite_keeps(crash) == verdict.kept
    salts = crash.wal[16:24]
    old = [
        i
        for i in range(crash.frames)
        if crash.wal[HEADER_SIZE + i * FRAME_SIZE + 8 : HEADER_SIZE + i * FRAME_SIZE + 16] != salts
    ]
    assert old and min(old) == verdict.kept, "the old generation starts right after the new one"
    # Old commit frames lie behind: they must not count as commits of this log.
    assert any(
        struct.unpack_from(">I", crash.wal, HEADER_SIZE + i * FRAME_SIZE + 4)[0] for i in old
    )


@pytest.mark.parametrize("length", [0, 1, HEADER_SIZE - 1, HEADER_SIZE])
def test_an_empty_or_header_only_log_is_not_damage(logs: dict[str, Crash], length: int) -> None:
    verdict = check_wal(logs["committed"].wal[:length])
    assert verdict.safe and verdict.frames == 0 and verdict.kept == 0


def test_a_partial_last_frame_is_not_damage(
    logs: dict[str, Crash], sqlite_keeps: Callable[[Crash], int | None]
) -> None:
    crash = logs["committed"]
    cut = Crash(crash.main, crash.wal[: len(crash.wal) - FRAME_SIZE // 2])
    verdict = check_wal(cut.wal)
    assert verdict.safe
    assert verdict.frames == crash.frames - 1
    assert sqlite_keeps(cut) == verdict.kept


# --- damage that would silently drop commits is refused ------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_flipped_byte_up_to_the_last_commit_is_refused(
    logs: dict[str, Crash], data: st.DataObject
) -> None:
    crash = logs[data.draw(st.sampled_from(sorted(logs)), label="log")]
    position = data.draw(st.integers(0, crash.committed_end() - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    verdict = check_wal(flipped(crash.wal, position, xor))
    assert not verdict.safe, (position, xor, verdict)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_what_recovery_keeps_is_what_sqlite_keeps(
    logs: dict[str, Crash], sqlite_keeps: Callable[[Crash], int | None], data: st.DataObject
) -> None:
    crash = logs[data.draw(st.sampled_from(sorted(logs)), label="log")]
    position = data.draw(st.integers(0, len(crash.wal) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    damaged = Crash(crash.main, flipped(crash.wal, position, xor))
    keeps = sqlite_keeps(damaged)
    verdict = check_wal(damaged.wal)
    if keeps is None:  # SQLite refuses a log of an unknown version: an error, not a loss
        assert not parse_header(damaged.wal).valid
    else:
        assert verdict.kept == keeps, (position, xor)


def test_the_issue_case_a_byte_in_the_middle_loses_every_later_commit(
    logs: dict[str, Crash], sqlite_keeps: Callable[[Crash], int | None]
) -> None:
    crash = logs["committed"]
    middle = crash.frames // 2
    damaged = Crash(
        crash.main, flipped(crash.wal, HEADER_SIZE + middle * FRAME_SIZE + FRAME_HEADER_SIZE + 9, 1)
    )
    verdict = check_wal(damaged.wal)
    assert sqlite_keeps(damaged) == verdict.kept <= middle  # SQLite would drop the rest...
    assert not verdict.safe  # ...which is refused
    assert f"frame {middle + 1} is damaged" in verdict.problem
    assert f"up to frame {crash.frames}" in verdict.problem


def test_a_last_commit_whose_commit_field_became_zero_is_refused(
    logs: dict[str, Crash],
) -> None:
    crash = logs["committed"]
    last = HEADER_SIZE + crash.commits()[-1] * FRAME_SIZE
    commit = struct.unpack_from(">I", crash.wal, last + 4)[0]
    assert 0 < commit < 256, "a small database: one non-zero byte, so one flip zeroes it"
    damaged = flipped(crash.wal, last + 7, commit)
    assert struct.unpack_from(">I", damaged, last + 4)[0] == 0
    verdict = check_wal(damaged)
    assert not verdict.safe
    assert "commits a transaction" in verdict.problem


@pytest.mark.parametrize(("position", "what"), [(0, "magic"), (9, "page size"), (13, "checksum")])
def test_a_damaged_header_with_frames_behind_it_is_refused(
    logs: dict[str, Crash], position: int, what: str
) -> None:
    verdict = check_wal(flipped(logs["committed"].wal, position, 0x40))
    assert not verdict.safe
    assert "header is damaged" in verdict.problem


def test_a_damaged_header_without_frames_is_not_damage(logs: dict[str, Crash]) -> None:
    assert check_wal(flipped(logs["committed"].wal[:HEADER_SIZE], 13, 1)).safe


def test_checksum_needs_whole_word_pairs() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        checksum(b"1234", big_endian=False)
