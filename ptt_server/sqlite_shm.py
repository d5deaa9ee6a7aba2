"""What SQLite's ``-shm`` file says had been committed to the ``-wal`` file: a witness.

``sqlite_wal.check_wal`` judges a log by its own bytes, so it cannot see frames that are
no longer there: a log truncated at a frame boundary, emptied or deleted after a crash looks
like a shorter, sound log, and SQLite's recovery silently keeps only what is left (issue 9:
a deleted -wal lost 117 of 283 acknowledged texts, a halved one 58). The wal-index in the
``-shm`` file remembers what the log held. SQLite updates its header as the last step of
every commit, after the commit's frames were written to the log (``walIndexWriteHdr`` in
SQLite's wal.c), so after a process crash the log holds at least the frames the header
counts. The header (sqlite.org/walformat.html#the_wal_index_file_format), in the machine's
byte order, is written twice, the second copy first:

    iVersion, unused, iChange (u32); isInit, bigEndCksum (u8); szPage (u16);
    mxFrame, nPage (u32); aFrameCksum (2 x u32); aSalt (the log header's 8 bytes);
    aCksum (2 x u32, over the 40 bytes before it, in native byte order)

followed at offset 96 by the checkpoint information, whose first word ``nBackfill`` counts
the frames already copied into the main file. Frames ``nBackfill+1 .. mxFrame`` exist only
in the log: if recovery would keep fewer of them than the header counts, committed
transactions would be lost. A log restarted after a checkpoint gets new salts and the header
``mxFrame = 0`` before any new frame is written (``walRestartHdr``), so a header of an older
log generation claims nothing.

The header is not proof against a power loss (it is not synced); it is a witness, not the
data: a header that is damaged, half-written or not initialised claims nothing, and SQLite
rebuilds the index from the log on the first open anyway (its first connection truncates
the file). So this only ever adds refusals where committed data would be lost.

Pure code: bytes in, verdict out; no file access.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

from ptt_server.sqlite_wal import HEADER_SIZE, checksum, parse_header

__all__ = ["ShmWitness", "check_against_log", "parse_shm"]

_VERSION = 3007000
_HEADER = struct.Struct("=IIIBBHII8s8sII")  # one copy of WalIndexHdr (aFrameCksum as 8s)
_COPY_SIZE = _HEADER.size
_BACKFILL_OFFSET = 2 * _COPY_SIZE  # WalCkptInfo.nBackfill
_MIN_SIZE = _BACKFILL_OFFSET + 4
_NATIVE_BIG = sys.byteorder == "big"


@dataclass(frozen=True, slots=True)
class ShmWitness:
    """What a sound wal-index header says of its log."""

    committed: int
    """``mxFrame``: frames of the log that ended in a commit, as of the last commit."""
    backfilled: int
    """``nBackfill``: of those, how many were copied into the main file."""
    salts: bytes
    """The log header's salts: which generation of the log the counts are about."""


def parse_shm(data: bytes) -> ShmWitness | None:
    """The witness in a ``-shm`` file's bytes, or None when its header claims nothing."""
    if len(data) < _MIN_SIZE:
        return None
    first = data[:_COPY_SIZE]
    # A crash between the two copies leaves them different: SQLite then treats the index as
    # unreliable, so do we, and take the first copy only if it is sound on its own.
    version, _, _, is_init, _, _, mx_frame, _, _, salts, c0, c1 = _HEADER.unpack(first)
    if version != _VERSION or is_init != 1:
        return None
    if checksum(first[:40], _NATIVE_BIG) != (c0, c1):
        return None
    (backfilled,) = struct.unpack_from("=I", data, _BACKFILL_OFFSET)
    if backfilled > mx_frame:
        return None  # not what SQLite writes: claim nothing
    return ShmWitness(committed=mx_frame, backfilled=backfilled, salts=salts)


def check_against_log(witness: ShmWitness | None, wal: bytes, kept: int) -> str:
    """Why recovering ``wal`` (of which recovery keeps ``kept`` frames) would lose commits
    the index witnessed, or "" when it would not.

    ``wal`` may be empty (a missing or emptied log). Only frames not yet copied into the
    main file count as lost: a log fully checkpointed can go without loss.
    """
    if witness is None or witness.committed <= witness.backfilled:
        return ""
    same_log = len(wal) >= HEADER_SIZE and parse_header(wal).salts == witness.salts
    found = kept if same_log else 0
    if found >= witness.committed:
        return ""
    unsaved = witness.committed - max(found, witness.backfilled)
    if not wal:
        where = "the log is missing or empty"
    elif not same_log:
        where = "the log there now is another one (other salts)"
    else:
        where = f"recovery would find only {found} committed frames in the log"
    return (
        f"its index records {witness.committed} committed frames, {unsaved} of them not yet "
        f"copied into the database, but {where}"
    )
