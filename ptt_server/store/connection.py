"""The store's one SQLite connection, the one thread that uses it, and opening a file.

The relay's event loop must never wait on the disk, so one dedicated thread
(a one-worker ``ThreadPoolExecutor``) owns the only ``sqlite3`` connection;
every async method submits a function to it (``_call``) and awaits the result.
Work runs in submission order, so a caller that awaited a write sees it in later
reads. If the awaiting task is cancelled, a write that already started still
completes (or rolls back) as a whole (:func:`write_transaction`): nothing is
ever half-written.

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

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

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

PRUNE_CHUNK = 500
"""Rows (bursts or messages) deleted per transaction by the prune methods, so other store
calls get the writer thread between chunks instead of queueing behind one huge delete."""

_SQLITE_MAGIC = b"SQLite format 3\x00"  # sqlite.org/fileformat2.html#magic_header_string

_P = ParamSpec("_P")
_T = TypeVar("_T")


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed on success, rolled back on any exception.

    ``BEGIN IMMEDIATE`` takes the write lock up front: in WAL mode a deferred transaction that
    read first and then writes fails with SQLITE_BUSY_SNAPSHOT if another process (ptt-admin)
    wrote in between, and ``busy_timeout`` cannot help with that (sqlite.org/wal.html#busy).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _corrupt_message(path: Path, detail: str, with_log: bool = False) -> str:
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


class StoreConnection:
    """The connection, its thread and the store's lifecycle; ``Store`` adds the table methods.

    Every table family's methods (``ptt_server.store.users`` ...) derive from this class and
    reach the database only through ``_call``.
    """

    def __init__(self, path: Path, busy_timeout_s: float, exclusive: bool = False) -> None:
        """Private: use ``Store.open``."""
        self._path = path
        self._exclusive = exclusive
        self._lock: datadir.DirectoryLock | None = None  # touched only on the store thread
        self._busy_timeout_ms = max(0, round(busy_timeout_s * 1000))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ptt-store")
        self._conn: sqlite3.Connection | None = None  # touched only on the store thread
        self._closing = False
        self._close_task: asyncio.Future[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0, exclusive: bool = False
    ) -> Self:
        """Open (or create) the store at ``path``, migrating an older schema.

        ``busy_timeout_s`` is how long a call waits for another process (``ptt-admin``)
        holding the write lock. ``exclusive`` (the server) locks the directory until the
        store is closed, and fails with ``InUseError`` if another exclusive store holds it;
        ``ptt-admin`` opens without it and works alongside the server. Raises
        ``CorruptDatabaseError``, ``ForeignDatabaseError`` or ``SchemaTooNewError`` without
        modifying the files, or ``StoreError`` if it cannot be opened or migrated (also for
        files of another user). Missing parent directories are created (0700).
        """
        store = cls(Path(path), busy_timeout_s, exclusive)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(store._executor, store._open_sync)
        except BaseException:
            # Also on cancellation: the open may still finish on the thread, so queue the
            # close behind it rather than leaving a connection nobody can close.
            store._closing = True
            store._executor.submit(store._close_sync)
            store._executor.shutdown(wait=False)
            raise
        return store

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closing

    async def close(self) -> None:
        """Finish queued calls, close the file and join the store thread; idempotent."""
        if self._close_task is None:
            self._closing = True
            self._close_task = asyncio.ensure_future(self._close_and_join())
        # Shielded: a caller cancelled during shutdown must not leave the thread running.
        await asyncio.shield(self._close_task)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _close_and_join(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_sync)
        finally:
            # The worker is idle now; joining it off-loop keeps close() non-blocking.
            await asyncio.to_thread(self._executor.shutdown, True)

    def _open_sync(self) -> None:
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
                self._path.parent.mkdir(mode=dbfiles.DIR_MODE, parents=True, exist_ok=True)
                self._lock = datadir.lock_directory(self._path.parent)
            files = dbfiles.inspect(self._path)
            if files.main_size:
                _inspect_existing(files)
            # Every check passed: from here on files may change.
            dbfiles.secure(files)
            if not files.main_size:
                dbfiles.create(self._path)
        except datadir.DirectoryInUseError as exc:
            raise InUseError(str(exc)) from None
        except dbfiles.DamagedFilesError as exc:
            raise CorruptDatabaseError(str(exc)) from None
        except datadir.DataDirError as exc:
            raise StoreError(str(exc)) from None
        except OSError as exc:
            raise StoreError(f"cannot open database {self._path}: {exc.strerror or exc}") from exc
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see write_transaction).
            conn = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self._path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            # Migrations run before foreign_keys=ON, as sqlite.org/lang_altertable.html
            # requires for table rebuilds; a check after them catches a broken migration.
            try:
                apply_migrations(conn, MIGRATIONS)
            except NewerSchemaError as exc:
                # Another process upgraded the file between our inspection and now.
                raise SchemaTooNewError(_too_new_message(self._path, exc.found)) from exc
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise StoreError(
                    f"database {self._path} has dangling references after migration; "
                    f"restore a backup"
                )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"database {self._path} cannot use WAL mode (got {mode!r}); "
                    f"put data_dir on a local file system"
                )
            # NORMAL is durable against process crashes in WAL mode; only a power loss can
            # drop the last commits (sqlite.org/pragma.html#pragma_synchronous).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open database {self._path}: {exc}") from exc
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    conn.execute("PRAGMA optimize")  # sqlite.org/lang_analyze.html#req
                except sqlite3.Error:
                    pass  # statistics only; never keep the file open over them
                finally:
                    conn.close()
        finally:
            self._release_lock()  # only once the file is closed: the next server may open it

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    # --- plumbing ------------------------------------------------------------------------------

    async def _call(
        self,
        op: str,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        if self._closing:
            raise StoreError(f"cannot {op}: the store {self._path} is closed")
        loop = asyncio.get_running_loop()
        job = functools.partial(self._run, op, functools.partial(fn, **kwargs), *args)
        return await loop.run_in_executor(self._executor, job)

    def _run(self, op: str, fn: Callable[..., _T], *args: Any) -> _T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"cannot {op}: the store {self._path} is closed")
        try:
            return fn(conn, *args)
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(self._explain(op, exc)) from exc
        except OverflowError as exc:
            raise StoreError(f"cannot {op}: a number is too large for the store ({exc})") from exc

    def _explain(self, op: str, exc: sqlite3.Error) -> str:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
            return (
                f"cannot {op}: database {self._path} stayed locked by another process for "
                f"{self._busy_timeout_ms} ms; stop it or retry"
            )
        if name == "SQLITE_FULL":
            return f"cannot {op}: the disk holding {self._path} is full; free space and retry"
        if name.startswith("SQLITE_READONLY"):
            return f"cannot {op}: database {self._path} is read-only; check file permissions"
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return _corrupt_message(self._path, str(exc))
        return f"cannot {op} in database {self._path}: {exc}"


# --- opening checks (store thread) ------------------------------------------------------------


def _too_new_message(path: Path, found: int) -> str:
    return (
        f"database {path} has schema version {found}, this ptt-server knows up to "
        f"{LATEST_VERSION}: upgrade ptt-server or restore a backup"
    )


def _inspect_existing(files: dbfiles.DatabaseFiles) -> None:
    """Refuse a non-empty main file we must not open, reading only.

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
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise CorruptDatabaseError(_corrupt_message(path, str(exc), with_log)) from exc
        raise StoreError(f"cannot read database {path}: {exc}") from exc
    finally:
        conn.close()
