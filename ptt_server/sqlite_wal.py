"""Would SQLite's crash recovery silently drop committed transactions from this -wal file?

After a crash the first connection to a WAL-mode database rebuilds its index from the
``-wal`` file (sqlite.org/fileformat2.html#walformat): it reads frames in order and stops at
the first whose salts differ from the header's or whose cumulative checksum is wrong; the
log then ends at the last commit frame before that point. Everything after it is ignored
without an error, and the next checkpoint throws it away. One damaged byte in the middle of
the log therefore loses every transaction committed after it. ``check_wal`` repeats that walk
and then looks past the stop for evidence that what would be dropped had been committed:

* a later frame of the same log generation (same salts) that ends a transaction and whose
  checksum is right counted from its predecessor's: committed data lies beyond the damage;
* the stopping frame itself ends a transaction of this generation (its header says so, or a
  one-byte change of its commit field makes its checksum right): the last commit was damaged;
* the header is damaged while frames follow it: SQLite would ignore the whole log.

It lets through what SQLite writes in normal operation and drops on purpose:

* frames after the last commit with no commit after them: a transaction a crash cut short,
  never acknowledged (including pages SQLite rewrote in place within that transaction, whose
  checksums it only fixes at commit: ``walRewriteChecksums`` in SQLite's wal.c);
* frames with older salts after the current ones: leftovers of a log restarted after a
  checkpoint (each restart increments salt-1 and draws a new random salt-2);
* an empty file, a header with no frames, a partial frame at the end.

Known false alarms, each needing a crash within a window of a few system calls: SQLite
killed between writing a commit frame's header and its page over a restarted log, or between
appending a commit frame and rewriting the checksums of pages it overwrote in place.

Pure code: bytes in, verdict out; no file access.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

__all__ = ["FRAME_HEADER_SIZE", "HEADER_SIZE", "WalHeader", "WalVerdict", "check_wal", "checksum"]

HEADER_SIZE = 32
FRAME_HEADER_SIZE = 24
_MAGIC_LITTLE = 0x377F0682  # checksums over little-endian words
_MAGIC_BIG = 0x377F0683  # checksums over big-endian words
_FORMAT_VERSION = 3007000
_MASK = 0xFFFFFFFF
_MIN_PAGE_SIZE, _MAX_PAGE_SIZE = 512, 65536
_HEADER = struct.Struct(">IIIIII")  # magic, version, page size, checkpoint seq, salt-1, salt-2
_FRAME = struct.Struct(">II8sII")  # page number, commit size, salts, checksum-1, checksum-2


@dataclass(frozen=True, slots=True)
class WalHeader:
    """The 32-byte log header; ``valid`` is what SQLite's recovery requires to read frames."""

    page_size: int
    checkpoint_seq: int
    salts: bytes
    big_endian: bool
    stored_checksum: tuple[int, int]
    valid: bool
    problem: str


@dataclass(frozen=True, slots=True)
class WalVerdict:
    """What recovery keeps, and whether it would drop anything that was committed.

    ``frames`` counts complete frames in the file, ``kept`` the frames recovery keeps (up to
    and including its last valid commit frame). ``problem`` is empty when nothing committed
    would be lost; otherwise it says, in a few words, what is damaged.
    """

    frames: int
    kept: int
    problem: str = ""
    damaged_commit: bool = False
    """The problem is the last commit frame itself: damage, or a commit the crash cut short
    (its header written, not its page); only the ``-shm`` index can tell which."""

    @property
    def safe(self) -> bool:
        """True when opening the database loses nothing that was committed."""
        return not self.problem


def checksum(data: bytes, big_endian: bool, s0: int = 0, s1: int = 0) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), continuing from (s0, s1).

    sqlite.org/fileformat2.html#walformat: for each pair of 32-bit words (x0, x1),
    s0 += x0 + s1 and s1 += x1 + s0, modulo 2**32.
    """
    if len(data) % 8:
        raise ValueError(f"checksummed data must be a multiple of 8 bytes, got {len(data)}")
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    it = iter(words)
    for x0, x1 in zip(it, it, strict=True):
        s0 = (s0 + x0 + s1) & _MASK
        s1 = (s1 + x1 + s0) & _MASK
    return s0, s1


def parse_header(data: bytes) -> WalHeader:
    """Decode the log header; ``data`` must hold at least ``HEADER_SIZE`` bytes."""
    magic, version, page_size, seq, salt1, salt2 = _HEADER.unpack_from(data)
    big_endian = bool(magic & 1)
    stored = struct.unpack_from(">II", data, 24)
    problem = ""
    if magic & ~1 != _MAGIC_LITTLE:
        problem = f"bad magic number {magic:#010x}"
    elif version != _FORMAT_VERSION:
        problem = f"unknown format version {version}"
    elif not _MIN_PAGE_SIZE <= page_size <= _MAX_PAGE_SIZE or page_size & (page_size - 1):
        problem = f"impossible page size {page_size}"
    elif checksum(data[:24], big_endian) != stored:
        problem = "bad header checksum"
    return WalHeader(
        page_size=page_size,
        checkpoint_seq=seq,
        salts=struct.pack(">II", salt1, salt2),
        big_endian=big_endian,
        stored_checksum=stored,
        valid=not problem,
        problem=problem,
    )


class _Frames:
    """Random access to the complete frames of a log whose header is valid."""

    def __init__(self, data: bytes, header: WalHeader) -> None:
        self.data = data
        self.header = header
        self.size = FRAME_HEADER_SIZE + header.page_size
        self.count = (len(data) - HEADER_SIZE) // self.size

    def fields(self, index: int) -> tuple[int, int, bytes, tuple[int, int]]:
        """(page number, commit size, salts, stored checksum) of frame ``index`` (0-based)."""
        page, commit, salts, c0, c1 = _FRAME.unpack_from(self.data, self._offset(index))
        return page, commit, salts, (c0, c1)

    def computed(self, index: int, start: tuple[int, int]) -> tuple[int, int]:
        """The checksum of frame ``index`` counted on from ``start``."""
        offset = self._offset(index)
        head = self.data[offset : offset + 8]
        body = self.data[offset + FRAME_HEADER_SIZE : offset + self.size]
        s0, s1 = checksum(head, self.header.big_endian, *start)
        return checksum(body, self.header.big_endian, s0, s1)

    def stored_before(self, index: int) -> tuple[int, int]:
        """The stored checksum the frame at ``index`` continues from (the header's for 0)."""
        return self.header.stored_checksum if index == 0 else self.fields(index - 1)[3]

    def consistent(self, index: int) -> bool:
        """Whether frame ``index``'s checksum is right counted from its predecessor's.

        Tried from the predecessor's stored checksum and from the one recomputed over its
        bytes, so a frame stays recognisable whichever part of its predecessor was damaged.
        """
        stored = self.fields(index)[3]
        if self.computed(index, self.stored_before(index)) == stored:
            return True
        if index == 0:
            return False
        return self.computed(index, self.computed(index - 1, self.stored_before(index - 1))) == (
            stored
        )

    def commit_byte_damaged(self, index: int) -> bool:
        """Whether one changed byte of the commit field explains a bad checksum, and the
        original field was non-zero: a commit frame whose commit field was damaged.

        The checksum is linear in each word (mod 2**32), so changing the commit word (the
        second word of the first pair) by d changes the result by d * (c0, c1), where
        (c0, c1) is that change carried through the remaining pairs.
        """
        offset = self._offset(index)
        raw = self.data[offset + 4 : offset + 8]
        order: Literal["big", "little"] = "big" if self.header.big_endian else "little"
        word = int.from_bytes(raw, order)
        start = self.stored_before(index)
        have = self.computed(index, start)
        want = self.fields(index)[3]
        diff = ((want[0] - have[0]) & _MASK, (want[1] - have[1]) & _MASK)
        c0, c1 = _carry(self.header.page_size // 8)
        for position in range(4):
            for value in range(256):
                if value == raw[position]:
                    continue
                candidate = raw[:position] + bytes([value]) + raw[position + 1 :]
                delta = (int.from_bytes(candidate, order) - word) & _MASK
                if (delta * c0) & _MASK == diff[0] and (delta * c1) & _MASK == diff[1]:
                    return int.from_bytes(candidate, "big") != 0
        return False

    def _offset(self, index: int) -> int:
        return HEADER_SIZE + index * self.size


def _carry(steps: int) -> tuple[int, int]:
    """(d0, d1) after ``steps`` pairs, starting from a change (0, 1) in (s0, s1).

    Each pair maps a change (d0, d1) to (d0 + d1, d0 + 2*d1), i.e. multiplies it by the
    matrix [[1, 1], [1, 2]]; raised to ``steps`` by repeated squaring.
    """
    result = ((1, 0), (0, 1))
    base = ((1, 1), (1, 2))
    while steps:
        if steps & 1:
            result = _matmul(base, result)
        base = _matmul(base, base)
        steps >>= 1
    return result[0][1], result[1][1]


def _matmul(
    a: tuple[tuple[int, int], tuple[int, int]], b: tuple[tuple[int, int], tuple[int, int]]
) -> tuple[tuple[int, int], tuple[int, int]]:
    return (
        ((a[0][0] * b[0][0] + a[0][1] * b[1][0]) & _MASK, (a[0][0] * b[0][1] + a[0][1] * b[1][1]) & _MASK),
        ((a[1][0] * b[0][0] + a[1][1] * b[1][0]) & _MASK, (a[1][0] * b[0][1] + a[1][1] * b[1][1]) & _MASK),
    )  # fmt: skip


def _one_byte_apart(a: bytes, b: bytes) -> bool:
    return sum(x != y for x, y in zip(a, b, strict=True)) == 1


def check_wal(data: bytes) -> WalVerdict:
    """Judge a whole -wal file: what recovery keeps, and whether committed data is lost."""
    if len(data) < HEADER_SIZE:
        return WalVerdict(frames=0, kept=0)  # recovery reads nothing from a partial header
    header = parse_header(data)
    if not header.valid:
        # SQLite ignores a log whose header is damaged (or refuses one of an unknown version).
        # Frames behind it cannot be checked without the header; refuse if one could be there.
        if len(data) >= HEADER_SIZE + FRAME_HEADER_SIZE + _MIN_PAGE_SIZE:
            return WalVerdict(
                frames=0,
                kept=0,
                problem=f"its header is damaged ({header.problem}) and "
                f"{len(data) - HEADER_SIZE} bytes of frames follow it",
            )
        return WalVerdict(frames=0, kept=0)
    frames = _Frames(data, header)
    running = header.stored_checksum
    kept = 0
    stop = frames.count
    for index in range(frames.count):
        page, commit, salts, stored = frames.fields(index)
        if salts != header.salts or page == 0:
            stop = index
            break
        running = frames.computed(index, running)
        if running != stored:
            stop = index
            break
        if commit:
            kept = index + 1
    if stop == frames.count:
        return WalVerdict(frames=frames.count, kept=kept)
    for later in range(frames.count - 1, stop, -1):
        page, commit, salts, _ = frames.fields(later)
        if commit and page and salts == header.salts and frames.consistent(later):
            return WalVerdict(
                frames=frames.count,
                kept=kept,
                problem=f"frame {stop + 1} is damaged and committed frames follow it "
                f"up to frame {later + 1}",
            )
    page, commit, salts, _ = frames.fields(stop)
    ours = salts == header.salts or _one_byte_apart(salts, header.salts)
    if ours and (commit or frames.commit_byte_damaged(stop)):
        return WalVerdict(
            frames=frames.count,
            kept=kept,
            problem=f"frame {stop + 1}, which commits a transaction, is damaged",
            damaged_commit=True,
        )
    return WalVerdict(frames=frames.count, kept=kept)
