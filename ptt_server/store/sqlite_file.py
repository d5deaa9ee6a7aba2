"""The SQLite engine: one file in WAL mode, opened with every check before a byte changes.

Opening refuses, without changing a byte of the files, a database that is not an
SQLite database, is damaged (``PRAGMA quick_check``, run with the commits still in
its -wal file), belongs to another program (``PRAGMA application_id``) or has a
newer schema than this code (``PRAGMA user_version``); before SQLite touches the
files, ``ptt_server.dbfiles`` refuses a -wal file that recovery would silently cut
short and a main file missing or empty beside a log. An older schema is migrated
(``ptt_server.store.schema``). The directory is kept 0700 and the files 0600; a
server opens its store ``exclusive``, locking the directory against a second server.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ptt_server import datadir, dbfiles
from ptt_server.store.errors import (
    CorruptDatabaseError,
    ForeignDatabaseError,
    InUseError,
    SchemaTooNewError,
    StoreError,
)
from ptt_server.store.schema import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    NewerSchemaError,
    apply_migrations,
)
from ptt_server.store.users import sample_credentials

_CREDENTIAL_SAMPLE = 16
"""Stored credentials handed to ``vet_credentials``: enough to tell the org's root from another."""
_SQLITE_MAGIC = b"SQLite format 3\x00"  # sqlite.org/fileformat2.html#magic_header_string

_T = TypeVar("_T")


class SqliteConnection:
    """The SQLite connection as a ``store.connection.Connection``: statements pass through."""

    def __init__(self, raw: sqlite3.Connection, files: dbfiles.OpenedFiles | None = None) -> None:
        self.raw = raw
        self.files = files
        """The files opened, checked before each commit (None: the read-only checks)."""
        self.saved: Path | None = None
        """Where what this connection held was saved once its files were replaced."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

        ``BEGIN IMMEDIATE`` takes the write lock up front: in WAL mode a deferred transaction
        that read first and then writes fails with SQLITE_BUSY_SNAPSHOT if another process
        (ptt-admin) wrote in between, and ``busy_timeout`` cannot help with that
        (sqlite.org/wal.html#busy).
        """
        conn = self.raw
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            changed = self.files.changed() if self.files is not None else ""
            if changed:
                conn.execute("ROLLBACK")
                raise StoreError(self._replaced(changed))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _replaced(self, changed: str) -> str:
        """Save what the connection holds (once) and say what to do, in one line."""
        assert self.files is not None and self.files.opened
        path = self.files.opened[0][0]
        if self.saved is None:
            try:
                self.saved = self._save_beside(path)
            except (OSError, sqlite3.Error) as exc:
                # The server's open file is then the only copy: /proc still reaches it.
                return (
                    f"database {path}: {changed} while the server ran, so nothing more is "
                    f"stored or acknowledged, and what the server held could not be saved "
                    f"({exc}): before stopping the server, copy out the files it still has "
                    f"open, `cp /proc/{os.getpid()}/fd/N` for each {path.name} and -wal marked "
                    f"deleted in `ls -l /proc/{os.getpid()}/fd`, as {path.name} and "
                    f"{path.name}-wal"
                )
        return (
            f"database {path}: {changed} while the server ran, so nothing more is stored or "
            f"acknowledged; what the server held is saved in {self.saved}. Stop the server, "
            f"keep the database you want as {path.name} (move the other and its -wal and -shm "
            f"away), and start again"
        )

    def _save_beside(self, path: Path) -> Path:
        """Copy the database SQLite has open, whole, to a new file next to ``path``."""
        for attempt in range(1, 100):
            saved = path.with_name(
                f"{path.name}.saved-{os.getpid()}" + (f"-{attempt}" if attempt > 1 else "")
            )
            try:
                fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dbfiles.FILE_MODE)
            except FileExistsError:
                continue  # never over another file
            os.close(fd)
            target = sqlite3.connect(saved)
            try:
                self.raw.backup(target)
            finally:
                target.close()
            return saved
        raise FileExistsError(f"{path.name}.saved-{os.getpid()}-* all exist")

    def is_id_exhausted(self, exc: Exception) -> bool:
        # AUTOINCREMENT past the CHECK on channel_id fails that CHECK (schema V1).
        return isinstance(exc, sqlite3.IntegrityError)


def _corrupt_message(path: Path, detail: str, with_log: bool = False) -> str:
    detail = " ".join(detail.split())  # quick_check's report spans lines: keep one line
    if with_log:
        wal, shm = dbfiles.sibling(path, "-wal").name, dbfiles.sibling(path, "-shm").name
        return (
            f"database {path} is damaged or not a database ({detail}; read together with "
            f"its write-ahead log {wal}); nothing was modified. Restore {path.name}, {wal} "
            f"and {shm} together from one backup, or move all three away to start with an "
            f"empty store."
        )
    return (
        f"database {path} is damaged or not a database ({detail}); it was not modified. "
        f"Restore it from a backup, or move it away to start with an empty store."
    )


class SqliteEngine:
    """The store's SQLite file, its checks on opening and its one connection."""

    def __init__(
        self,
        path: Path,
        busy_timeout_s: float,
        exclusive: bool,
        vet_credentials: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self.path = path
        self._vet_credentials = vet_credentials
        self.location = str(path)
        self._exclusive = exclusive
        self._lock: datadir.DirectoryLock | None = None  # touched only on the store thread
        self._busy_timeout_ms = max(0, round(busy_timeout_s * 1000))
        self._conn: SqliteConnection | None = None  # touched only on the store thread

    def open(self) -> None:
        try:
            self._open_checked()
        except BaseException:
            self._release_lock()  # the open is over either way: no connection was kept
            raise

    def _open_checked(self) -> None:
        try:
            if self._exclusive:
                # First, so nothing below races a second server; creating a missing
                # directory is the only change made before the checks.
                self.path.parent.mkdir(mode=dbfiles.DIR_MODE, parents=True, exist_ok=True)
                self._lock = datadir.lock_directory(self.path.parent)
            files = dbfiles.inspect(self.path)
            if files.main_size:
                _inspect_existing(files, self._vet_credentials)
            # Every check passed: from here on files may change.
            dbfiles.secure(files)
            if not files.main_size:
                dbfiles.create(self.path)
        except datadir.DirectoryInUseError as exc:
            raise InUseError(str(exc)) from None
        except dbfiles.DamagedFilesError as exc:
            raise CorruptDatabaseError(str(exc)) from None
        except datadir.DataDirError as exc:
            raise StoreError(str(exc)) from None
        except OSError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc.strerror or exc}") from exc
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see write_transaction).
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            # Migrations run before foreign_keys=ON, as sqlite.org/lang_altertable.html
            # requires for table rebuilds; a check after them catches a broken migration.
            try:
                apply_migrations(conn, MIGRATIONS)
            except NewerSchemaError as exc:
                # Another process upgraded the file between our inspection and now.
                raise SchemaTooNewError(_too_new_message(self.path, exc.found)) from exc
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise StoreError(
                    f"database {self.path} has dangling references after migration; "
                    f"restore a backup"
                )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"database {self.path} cannot use WAL mode (got {mode!r}); "
                    f"put data_dir on a local file system"
                )
            # NORMAL is durable against process crashes in WAL mode; only a power loss can
            # drop the last commits (sqlite.org/pragma.html#pragma_synchronous).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open database {self.path}: {exc}") from exc
            raise
        self._conn = SqliteConnection(conn, dbfiles.OpenedFiles.of(self.path))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    conn.raw.execute("PRAGMA optimize")  # sqlite.org/lang_analyze.html#req
                except sqlite3.Error:
                    pass  # statistics only; never keep the file open over them
                finally:
                    conn.raw.close()
        finally:
            self._release_lock()  # only once the file is closed: the next server may open it

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def run(self, op: str, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"cannot {op}: the store {self.path} is closed")
        try:
            return fn(conn, *args)
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(self._explain(op, exc)) from exc
        except OverflowError as exc:
            raise StoreError(f"cannot {op}: a number is too large for the store ({exc})") from exc
        except UnicodeEncodeError as exc:
            # A str with a lone surrogate (JSON can carry "\udc80") has no UTF-8 form.
            raise StoreError(f"cannot {op}: a text value is not valid Unicode ({exc})") from exc

    def _explain(self, op: str, exc: sqlite3.Error) -> str:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
            return (
                f"cannot {op}: database {self.path} stayed locked by another process for "
                f"{self._busy_timeout_ms} ms; stop it or retry"
            )
        if name == "SQLITE_FULL":
            return f"cannot {op}: the disk holding {self.path} is full; free space and retry"
        if name.startswith("SQLITE_READONLY"):
            return f"cannot {op}: database {self.path} is read-only; check file permissions"
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return _corrupt_message(self.path, str(exc))
        return f"cannot {op} in database {self.path}: {exc}"


# --- opening checks (store thread) ------------------------------------------------------------


def _too_new_message(path: Path, found: int) -> str:
    return (
        f"database {path} has schema version {found}, this ptt-server knows up to "
        f"{LATEST_VERSION}: upgrade ptt-server or restore a backup"
    )


def _inspect_existing(
    files: dbfiles.DatabaseFiles, vet_credentials: Callable[[list[bytes]], None] | None
) -> None:
    """Refuse a non-empty main file we must not open, reading only.

    ``vet_credentials`` gets a sample of the stored credentials (``users.sample_credentials``)
    once the file passed its checks, and raises to refuse it, before anything is written.

    ``dbfiles.read_only`` writes nothing and sees the commits in the -wal file when there
    are any: with a log, the main file alone may be half-way through a checkpoint and look
    damaged when it is not. ``apply_migrations`` re-checks the version under the write lock.
    """
    path = files.path
    with_log = files.wal_frames > 0
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read database {path}: {exc.strerror}") from exc
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise CorruptDatabaseError(_corrupt_message(path, "no SQLite header"))
    try:
        conn = dbfiles.read_only(files)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read database {path}: {exc}") from exc
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = int(conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0])
        # Ours at version >= 1 always carries our application id (migration 1 sets it).
        if app_id != APPLICATION_ID and (app_id != 0 or version != 0 or tables != 0):
            raise ForeignDatabaseError(
                f"{path} is an SQLite database of another program (application_id "
                f"{app_id:#x}, user_version {version}, {tables} schema objects); it was not "
                f"modified. Point data_dir elsewhere or move the file away."
            )
        if version > LATEST_VERSION:
            raise SchemaTooNewError(_too_new_message(path, version))
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise CorruptDatabaseError(_corrupt_message(path, "; ".join(problems), with_log))
        if vet_credentials is not None and version >= 1:
            vet_credentials(sample_credentials(SqliteConnection(conn), _CREDENTIAL_SAMPLE))
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise CorruptDatabaseError(_corrupt_message(path, str(exc), with_log)) from exc
        raise StoreError(f"cannot read database {path}: {exc}") from exc
    finally:
        conn.close()
