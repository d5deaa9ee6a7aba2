"""The store's one database connection, the one thread that uses it, and its lifecycle.

The relay's event loop must never wait on the database, so one dedicated thread
(a one-worker ``ThreadPoolExecutor``) owns the only connection; every async method
submits a function to it (``_call``) and awaits the result. Work runs in submission
order, so a caller that awaited a write sees it in later reads. If the awaiting task is
cancelled, a write that already started still completes (or rolls back) as a whole
(:func:`write_transaction`): nothing is ever half-written.

The connection is one of two engines, chosen by what ``Store.open`` is given:

* a path: an SQLite file in WAL mode (``ptt_server.store.sqlite_file``), the default, one
  server per data directory;
* a ``postgresql://`` URL: a PostgreSQL database that the nodes of a cluster share
  (``ptt_server.store.postgresql``), which reconnects when PostgreSQL restarts.

Both run the same SQL. The table families' functions take a :class:`Connection` and write
in ``?`` placeholders and the SQL both engines speak (``INSERT ... ON CONFLICT``,
``RETURNING``); the PostgreSQL engine translates the placeholders.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Protocol, Self, TypeVar

from ptt_server.store.errors import StoreError

PRUNE_CHUNK = 500
"""Rows (bursts or messages) deleted per transaction by the prune methods, so other store
calls get the writer thread between chunks instead of queueing behind one huge delete."""

DEFAULT_RECONNECT_TIMEOUT_S = 15.0
"""How long a call on a PostgreSQL store waits for a lost server to come back."""

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Cursor(Protocol):
    """The result of :meth:`Connection.execute`: rows as tuples, and the rows changed."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE (summed over ``executemany``)."""
        ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the table families' SQL functions get: both engines' connections fit it.

    SQL is written with ``?`` placeholders. Integers, floats, text, bytes and None go in
    and come out as themselves (booleans are stored as integers 0 and 1).
    """

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor: ...

    def write_transaction(self) -> AbstractContextManager[None]:
        """See :func:`write_transaction`."""
        ...

    def is_id_exhausted(self, exc: Exception) -> bool:
        """True if ``exc`` says an id column has no value left to hand out."""
        ...


class Engine(Protocol):
    """One database engine behind a store: opening, running one call, closing.

    Every method runs on the store thread.
    """

    location: str
    """The database as the operator names it (a path, or a URL without its password)."""

    def open(self) -> None: ...

    def run(self, op: str, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        """``fn(connection, *args)``, its failures as ``StoreError`` saying what to do.

        ``op`` names the operation for the messages ("store user").
        """
        ...

    def close(self) -> None: ...


def write_transaction(conn: Connection) -> AbstractContextManager[None]:
    """One write transaction: committed on success, rolled back on any exception.

    On SQLite this is ``BEGIN IMMEDIATE`` ... ``COMMIT``. On PostgreSQL every store call
    is already one SERIALIZABLE transaction, committed when the call returns, so a
    function must do its writes in one ``with write_transaction(conn)`` and return from
    inside it (they all do).
    """
    return conn.write_transaction()


def is_postgresql_url(target: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL, which opens a PostgreSQL store."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


class StoreConnection:
    """The engine, its thread and the store's lifecycle; ``Store`` adds the table methods.

    Every table family's methods (``ptt_server.store.users`` ...) derive from this class and
    reach the database only through ``_call``.
    """

    def __init__(self, engine: Engine) -> None:
        """Private: use ``Store.open``."""
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ptt-store")
        self._closing = False
        self._close_task: asyncio.Future[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        target: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        exclusive: bool = False,
        reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
        vet_credentials: Callable[[list[bytes]], None] | None = None,
    ) -> Self:
        """Open (or create) the store at ``target``: an SQLite file's path, or a
        ``postgresql://USER[:PASSWORD]@HOST:PORT/DB`` URL.

        SQLite: an older schema is migrated. ``busy_timeout_s`` is how long a call waits for
        another process (``ptt-admin``) holding the write lock. ``exclusive`` (the server)
        locks the directory until the store is closed, and fails with ``InUseError`` if
        another exclusive store holds it. Raises ``CorruptDatabaseError``,
        ``ForeignDatabaseError`` or ``SchemaTooNewError`` without modifying the files, or
        ``StoreError`` if it cannot be opened or migrated (also for files of another user).
        Missing parent directories are created (0700). ``vet_credentials`` is called with
        a sample of the stored credentials after the checks and before anything is written;
        what it raises ends the open with the files unchanged (the server checks that its
        org root signed them). PostgreSQL has no files to protect: it is not called there.

        PostgreSQL: the schema is created in an empty database; ``ForeignDatabaseError`` and
        ``SchemaTooNewError`` refuse other databases, changing nothing. Several processes
        (a cluster's nodes) may open one database at once, so ``exclusive`` does not apply.
        ``reconnect_timeout_s`` is how long a call retries while PostgreSQL is unreachable
        before it fails with a ``StoreError`` (see ``ptt_server.store.postgresql``).
        """
        engine: Engine
        if is_postgresql_url(target):
            # Imported here: a server on SQLite never loads the PostgreSQL driver.
            from ptt_server.store.postgresql import PostgresEngine

            engine = PostgresEngine(str(target), reconnect_timeout_s)
        else:
            from ptt_server.store.sqlite_file import SqliteEngine

            engine = SqliteEngine(Path(target), busy_timeout_s, exclusive, vet_credentials)
        store = cls(engine)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(store._executor, engine.open)
        except BaseException:
            # Also on cancellation: the open may still finish on the thread, so queue the
            # close behind it rather than leaving a connection nobody can close.
            store._closing = True
            store._executor.submit(engine.close)
            store._executor.shutdown(wait=False)
            raise
        return store

    @property
    def location(self) -> str:
        """The database: its file's path, or its URL without the password."""
        return self._engine.location

    @property
    def path(self) -> Path:
        """The database file (an SQLite store's; a PostgreSQL store has none)."""
        path: Path | None = getattr(self._engine, "path", None)
        if path is None:
            raise StoreError(f"the store {self.location} is on PostgreSQL: it has no file")
        return path

    @property
    def failed_connects(self) -> int:
        """Attempts to (re)connect to PostgreSQL that failed since opening; 0 on SQLite."""
        count: int = getattr(self._engine, "failed_connects", 0)
        return count

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closing

    async def close(self) -> None:
        """Finish queued calls, close the database and join the store thread; idempotent."""
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
            await loop.run_in_executor(self._executor, self._engine.close)
        finally:
            # The worker is idle now; joining it off-loop keeps close() non-blocking.
            await asyncio.to_thread(self._executor.shutdown, True)

    # --- plumbing ------------------------------------------------------------------------------

    async def _call(
        self,
        op: str,
        fn: Callable[Concatenate[Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        if self._closing:
            raise StoreError(f"cannot {op}: the store {self.location} is closed")
        loop = asyncio.get_running_loop()
        job = functools.partial(self._engine.run, op, functools.partial(fn, **kwargs), args)
        return await loop.run_in_executor(self._executor, job)
