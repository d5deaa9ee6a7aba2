"""The database's files on disk: looked at before SQLite may open them, and kept private.

SQLite's own open is not a safe first look. It recovers a ``-wal`` file by silently dropping
everything after the first damaged frame (``ptt_server.sqlite_wal``), and it turns a missing
or empty main file into a new empty database, discarding the log. So ``inspect`` reads the
files first and refuses, changing nothing:

* the main file is missing while its ``-wal`` or ``-shm`` is there;
* the main file is empty while its ``-wal`` is not;
* the ``-wal`` holds committed frames that recovery would drop (``sqlite_wal.check_wal``);
* the ``-shm`` index witnesses committed frames that the ``-wal`` no longer holds: a log
  truncated, emptied, deleted or swapped for another (``sqlite_shm.check_against_log``);
* the database or its ``-wal`` or ``-shm`` is a symbolic link: SQLite would put the log
  next to the link's target, where these checks and the directory lock do not look;
* the directory or one of the files belongs to another user (``datadir.check_owner``) or
  cannot be written (SQLite would open it read-only without a word).

``read_only`` opens the database for the store's own checks without writing: ``immutable``
when there is no log to read, otherwise read-only with SQLite's ``-shm`` index opened
read-only too (``readonly_shm``); only when no ``-shm`` exists does SQLite create one, as it
would at the next open anyway.

``secure`` narrows the directory to 0700 and the files to 0600 once every check passed;
``create`` makes a new main file 0600, so the ``-wal`` and ``-shm`` SQLite adds next to it get
the same mode (SQLite copies the main file's: ``findCreateFileMode`` in os_unix.c).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from ptt_server import datadir
from ptt_server.sqlite_shm import ShmWitness, check_against_log, parse_shm
from ptt_server.sqlite_wal import WalVerdict, check_wal, parse_header

__all__ = [
    "DamagedFilesError",
    "DatabaseFiles",
    "OpenedFiles",
    "create",
    "inspect",
    "read_only",
    "secure",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
_STABLE_READS = 4
"""How often a log that looks damaged is re-read to tell damage from a writer at work."""


class DamagedFilesError(Exception):
    """The files are in a state SQLite would silently lose data from; nothing was changed."""


@dataclass(frozen=True, slots=True)
class DatabaseFiles:
    """What ``inspect`` found next to the database path."""

    path: Path
    main_size: int | None
    """Size of the main file, or None if there is none."""
    wal_frames: int
    """Complete frames in the ``-wal`` file that recovery would read (0 without one)."""
    shm_exists: bool

    @property
    def wal(self) -> Path:
        return sibling(self.path, "-wal")

    @property
    def shm(self) -> Path:
        return sibling(self.path, "-shm")


def sibling(path: Path, suffix: str) -> Path:
    """SQLite's name for the ``-wal`` or ``-shm`` file of ``path``."""
    return path.with_name(path.name + suffix)


def _size(path: Path) -> int | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise datadir.DataDirError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        # SQLite resolves the link and keeps the -wal and -shm beside its target, where
        # neither these checks nor the data directory's lock and modes reach.
        raise datadir.DataDirError(
            f"{path} is a symbolic link: put the real file there (or point data_dir at the "
            f"directory that holds the database); nothing was changed"
        )
    if not stat.S_ISREG(st.st_mode):
        raise datadir.DataDirError(
            f"database path {path} is not a regular file; move it away or choose another data_dir"
        )
    return st.st_size


def _check_writable(path: Path) -> None:
    """Refuse a file or directory the server could not write, if it exists.

    SQLite opens a database it cannot write read-only without a word, and the relay would
    then answer every text with a storage error. ``access`` sees modes, the immutable flag
    and read-only mounts alike.
    """
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        raise datadir.DataDirError(
            f"{path} cannot be written by this user (its mode, an immutable flag or a "
            f"read-only file system): make it writable (chmod u+w, chattr -i, or mount it "
            f"read-write), then start again; nothing was changed"
        )


def inspect(path: Path) -> DatabaseFiles:
    """Look at the database's files, reading only; raise if opening them would lose data.

    Raises ``DamagedFilesError`` for the states listed in the module docstring and
    ``datadir.DataDirError`` for a file of another user or one that cannot be read.
    """
    wal, shm = sibling(path, "-wal"), sibling(path, "-shm")
    for each in (path.parent, path, wal, shm):
        datadir.check_owner(each)
    main_size, wal_size, shm_size = _size(path), _size(wal), _size(shm)
    for each in (path.parent, path, wal, shm):
        _check_writable(each)
    restore = (
        f"Restore {path.name}, {wal.name} and {shm.name} together from one backup, or move all "
        f"of them away to start with an empty store"
    )
    if main_size is None and (wal_size is not None or shm_size is not None):
        present = wal if wal_size is not None else shm
        raise DamagedFilesError(
            f"database {path} is missing but {present.name} is still there: SQLite would start "
            f"an empty database and discard it. Nothing was modified. {restore}"
        )
    if main_size == 0 and wal_size:
        raise DamagedFilesError(
            f"database {path} is empty but its write-ahead log {wal.name} holds {wal_size} "
            f"bytes: SQLite would start an empty database and truncate the log. Nothing was "
            f"modified. {restore}"
        )
    frames = 0
    if main_size and (wal_size is not None or shm_size is not None):
        verdict, witnessed = _judge_log(wal, shm)
        accept = (
            f"; or, to accept that loss, copy the three files aside, then run "
            f"`sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)'`"
        )
        if not verdict.safe:
            loss = (
                f"keep frames 1-{verdict.kept} and silently drop the commits after them"
                if verdict.kept
                else "silently ignore the whole log"
            )
            raise DamagedFilesError(
                f"the write-ahead log {wal} is damaged: {verdict.problem}; on open SQLite "
                f"would {loss}. Nothing was modified. {restore}{accept}"
            )
        if witnessed:
            raise DamagedFilesError(
                f"the write-ahead log {wal} has lost committed transactions: {shm.name} "
                f"{witnessed}; on open SQLite would silently drop them. Nothing was "
                f"modified. {restore}{accept}"
            )
        frames = verdict.frames
    return DatabaseFiles(path, main_size, frames, shm_size is not None)


def _read(path: Path) -> bytes:
    """The file's bytes; empty when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise datadir.DataDirError(f"cannot read {path}: {exc.strerror}") from None


def _judge_log(wal: Path, shm: Path) -> tuple[WalVerdict, str]:
    """``check_wal`` of the log, and what its index witnessed that the log no longer holds
    (``sqlite_shm``); a bad verdict counts only if a second read is identical.

    Another process (a server still running, ``sqlite3``) may be writing while we read,
    and a read that overtakes its writes can look like damage. The index is read before
    the log: SQLite writes a commit's frames before the index header that counts them. A
    pair of files that keeps changing has a live writer, and SQLite runs no recovery while
    one is connected: it is then judged by its last read only if that looks sound.
    """
    previous: tuple[bytes, bytes] | None = None
    verdict = WalVerdict(frames=0, kept=0)
    for _ in range(_STABLE_READS):
        index, data = _read(shm), _read(wal)
        verdict = _cut_short_commit(check_wal(data), parse_shm(index), data)
        witnessed = check_against_log(parse_shm(index), data, verdict.kept)
        if (verdict.safe and not witnessed) or (index, data) == previous:
            return verdict, witnessed
        previous = (index, data)
    return WalVerdict(frames=verdict.frames, kept=verdict.kept), ""  # a writer is at work


def _cut_short_commit(verdict: WalVerdict, witness: ShmWitness | None, wal: bytes) -> WalVerdict:
    """A damaged last commit frame that the index never counted as committed is a commit
    the crash cut short (SQLite counts a commit in the index only after writing all its
    frames): nothing acknowledged is in it, and recovery rightly drops it."""
    if not verdict.damaged_commit or witness is None:
        return verdict
    if witness.salts == parse_header(wal).salts and witness.committed <= verdict.kept:
        return WalVerdict(frames=verdict.frames, kept=verdict.kept)
    return verdict


def read_only(files: DatabaseFiles) -> sqlite3.Connection:
    """A connection for checks that writes neither the main file nor the log.

    Closing a read-only connection never checkpoints, so the log stays as it is whatever
    the checks find (sqlite.org/wal.html#readonly).
    """
    uri = files.path.resolve().as_uri()
    if files.wal_frames == 0:
        # No log to apply: immutable takes no locks and creates no -wal or -shm file
        # (sqlite.org/uri.html#uriimmutable).
        return sqlite3.connect(uri + "?immutable=1", uri=True)
    if files.shm_exists:
        return sqlite3.connect(uri + "?mode=ro&readonly_shm=1", uri=True)
    return sqlite3.connect(uri + "?mode=ro", uri=True)


def secure(files: DatabaseFiles) -> None:
    """Narrow the directory to 0700 and the main, -wal and -shm files to 0600 (logged)."""
    datadir.tighten(files.path.parent, DIR_MODE)
    for each in (files.path, files.wal, files.shm):
        datadir.tighten(each, FILE_MODE)


def create(path: Path) -> None:
    """Create the missing directory (0700) and an empty main file (0600) for SQLite to fill.

    SQLite treats an empty file as a new database. ``O_EXCL``: if another process created
    the file since ``inspect`` looked, it is left to that process.
    """
    # Only the last directory gets DIR_MODE (pathlib); the umask can only remove bits.
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


@dataclass(frozen=True, slots=True)
class OpenedFiles:
    """Which files (device and inode) the database and its -wal were when SQLite opened them.

    SQLite keeps writing to the files it opened. If someone replaces or deletes one while
    the server runs (a backup restored over it, ``rm``), every later commit goes to a file
    no path leads to any more and is lost at the next start, acknowledged or not: SQLite
    notices none of it. ``changed`` compares the paths with what was opened; the store calls
    it before each commit (two ``stat`` calls) and refuses the commit when they differ.
    """

    opened: tuple[tuple[Path, int, int], ...]

    @classmethod
    def of(cls, path: Path) -> OpenedFiles:
        """Record the database and its -wal (if SQLite made one) as they are now."""
        found = []
        for each in (path, sibling(path, "-wal")):
            try:
                st = os.stat(each)
            except FileNotFoundError:
                continue
            found.append((each, st.st_dev, st.st_ino))
        return cls(tuple(found))

    def changed(self) -> str:
        """How a path no longer leads to the file opened, in a few words; "" if none."""
        for path, dev, ino in self.opened:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return f"{path.name} was deleted"
            except OSError as exc:
                return f"{path.name} cannot be looked at ({exc.strerror})"
            if (st.st_dev, st.st_ino) != (dev, ino):
                return f"{path.name} was replaced by another file"
        return ""
