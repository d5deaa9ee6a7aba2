"""The server's embedded store: SQLite in WAL mode behind an async repository.

The relay's event loop must never wait on the disk, so one dedicated thread
(a one-worker ``ThreadPoolExecutor``) owns the only ``sqlite3`` connection;
every async method submits a function to it and awaits the result. Work runs
in submission order, so a caller that awaited a write sees it in later reads.
If the awaiting task is cancelled, a write that already started still
completes (or rolls back) as a whole: nothing is ever half-written.

Everything that came from the network (credentials, signed rosters and
revocation lists, key envelopes, sealed messages and locations, voice frames)
is stored as opaque bytes; the store never parses it. Times are inputs
(Unix seconds, ``float``), never read from a clock here.

Opening refuses, without changing a byte of the files, a database that is not an
SQLite database, is damaged (``PRAGMA quick_check``, run with the commits still in
its -wal file), belongs to another program (``PRAGMA application_id``) or has a
newer schema than this code (``PRAGMA user_version``); before SQLite touches the
files, ``ptt_server.dbfiles`` refuses a -wal file that recovery would silently cut
short and a main file missing or empty beside a log. An older schema is migrated
(``ptt_server.schema``). The directory is kept 0700 and the files 0600; a server
opens its store ``exclusive``, locking the directory against a second server.

Exceptions (all carry a message that says what to do)::

    StoreError                  any store failure; the write was rolled back
    ├── CorruptDatabaseError    the files are not a healthy SQLite database (or its log)
    ├── InUseError              another ptt-server holds the directory (``exclusive``)
    ├── ForeignDatabaseError    the file is another program's database
    ├── SchemaTooNewError       written by a newer ptt-server
    ├── NotFoundError           a referenced channel, burst, alert ... does not exist
    ├── ConflictError           a unique name or fingerprint is already taken
    └── StaleVersionError       a roster or revocation list is not newer than the stored one
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, NamedTuple, ParamSpec, TypeVar

from ptt_server import datadir, dbfiles
from ptt_server.schema import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    NewerSchemaError,
    apply_migrations,
)

__all__ = [
    "DEFAULT_MESSAGE_RETENTION_S",
    "Burst",
    "BurstFrame",
    "Channel",
    "ConflictError",
    "CorruptDatabaseError",
    "Delivery",
    "Emergency",
    "EmergencyRaise",
    "ForeignDatabaseError",
    "InUseError",
    "KeyEnvelope",
    "NotFoundError",
    "Presence",
    "RevocationList",
    "Roster",
    "SchemaTooNewError",
    "StaleVersionError",
    "Store",
    "StoreError",
    "StoredMessage",
    "User",
]

DEFAULT_MESSAGE_RETENTION_S = 7 * 24 * 3600.0
"""Direct messages are kept 7 days, like Zello Work's offline messages."""

MESSAGE_ID_LEN = 16
MAX_ALERT_ID_LEN = 64
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_U32_MAX = 2**32 - 1
_SQLITE_MAGIC = b"SQLite format 3\x00"  # sqlite.org/fileformat2.html#magic_header_string
_PRUNE_CHUNK = 500
"""Rows (bursts or messages) deleted per transaction by the prune methods, so other store
calls get the writer thread between chunks instead of queueing behind one huge delete."""

_P = ParamSpec("_P")
_T = TypeVar("_T")


class StoreError(Exception):
    """A store operation failed; any write it started was rolled back."""


class CorruptDatabaseError(StoreError):
    """The database file is not a healthy SQLite database; it was left untouched."""


class InUseError(StoreError):
    """Another process opened this directory's store ``exclusive`` (a second ptt-server)."""


class ForeignDatabaseError(StoreError):
    """The file is an SQLite database written by another program; it was left untouched."""


class SchemaTooNewError(StoreError):
    """The file was written by a newer ptt-server; it was left untouched."""


class NotFoundError(StoreError):
    """A channel, burst, message or alert the call refers to does not exist."""


class ConflictError(StoreError):
    """A unique value (channel name, credential fingerprint) already belongs to another record."""


class StaleVersionError(StoreError):
    """A signed roster or revocation list is not newer than the one already stored."""


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    """An enrolled user's device credential, as issued by the org root (opaque here)."""

    user_id: str
    display_name: str
    role: str
    device_id: str
    credential: bytes
    fingerprint: bytes
    serial: int
    enrolled_at: float


@dataclass(frozen=True, slots=True)
class RevocationList:
    """The newest root-signed revocation list and the ids it revokes."""

    version: int
    signed: bytes
    user_ids: frozenset[str]
    serials: frozenset[int]


@dataclass(frozen=True, slots=True)
class Channel:
    """A talk group; ``channel_id`` is a u32 that is never reused."""

    channel_id: int
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Roster:
    """A channel's signed member list and the member ids the signer put in it."""

    channel_id: int
    version: int
    signed: bytes
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class KeyEnvelope:
    """A channel epoch key wrapped (HPKE) to one member."""

    channel_id: int
    recipient: str
    epoch: int
    envelope: bytes
    stored_at: float


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A sealed text/status message; exactly one of ``to_user`` and ``to_channel`` is set."""

    message_id: bytes
    from_user: str
    to_user: str | None
    to_channel: int | None
    sealed: bytes
    sent_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """Delivery state of one message to one recipient."""

    recipient: str
    delivered_at: float | None
    read_at: float | None


@dataclass(frozen=True, slots=True)
class Emergency:
    """An emergency alert and who acknowledged or cancelled it."""

    alert_id: bytes
    user_id: str
    channel_id: int | None
    sealed_location: bytes | None
    raised_at: float
    acked_by: str | None
    acked_at: float | None
    cancelled_by: str | None
    """Who cancelled it; None with ``cancelled_at`` set: merged into an older alert (schema 2)."""
    cancelled_at: float | None
    updated_at: float
    """The last press of the button (``raised_at`` is the first)."""
    presses: int
    """How many times the button was pressed for this alert."""

    @property
    def acknowledged(self) -> bool:
        """True once a dispatcher acknowledged the alert."""
        return self.acked_at is not None

    @property
    def active(self) -> bool:
        """True until the alert is cancelled."""
        return self.cancelled_at is None


@dataclass(frozen=True, slots=True)
class EmergencyRaise:
    """What :meth:`Store.raise_emergency` did, and the alert as stored afterwards.

    ``outcome`` is ``created`` (a new alert), ``updated`` (the user's active alert, whatever id
    the press carried, now has the new location and time), ``closed`` (the press names an alert
    that was cancelled: nothing changed) or ``foreign`` (the id is another user's alert: nothing
    changed).
    """

    outcome: Literal["created", "updated", "closed", "foreign"]
    alert: Emergency


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's last known status; the location is sealed end-to-end (opaque here)."""

    user_id: str
    status: str
    online: bool
    last_seen: float
    sealed_location: bytes | None = None


@dataclass(frozen=True, slots=True)
class Burst:
    """One talk burst's log entry; ``frame_count`` is 0 once its recording was pruned."""

    burst_key: int
    channel_id: int
    burst_id: int
    talker: str
    priority: int
    started_at: float
    duration: float | None
    outcome: str | None
    frame_count: int


class BurstFrame(NamedTuple):
    """One recorded E2E-sealed voice frame of a burst (a plain tuple also works as input)."""

    seq: int
    flags: int
    frame: bytes


# --- input checks (run on the caller's side, before anything is queued) ---------------------


def _check_int(name: str, value: int, low: int = _I64_MIN, high: int = _I64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise StoreError(f"{name} {value} is outside {low}..{high}")
    return value


def _check_channel_id(channel_id: int) -> int:
    return _check_int("channel id", channel_id, 1, _U32_MAX)


def _check_text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise StoreError(f"{name} must be a non-empty string")
    return value


def _check_bytes(
    name: str, value: bytes, length: int | None = None, max_len: int | None = None
) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StoreError(f"{name} must be bytes, not {type(value).__name__}")
    data = bytes(value)
    if length is not None and len(data) != length:
        raise StoreError(f"{name} must be {length} bytes, got {len(data)}")
    if max_len is not None and not 0 < len(data) <= max_len:
        raise StoreError(f"{name} must be 1..{max_len} bytes, got {len(data)}")
    return data


def _check_optional_bytes(name: str, value: bytes | None) -> bytes | None:
    return None if value is None else _check_bytes(name, value)


def _check_ids(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str | bytes):
        raise StoreError(
            f"{name} must be a collection of user ids, not a single {type(values).__name__}"
        )
    return tuple(sorted({_check_text(name, v) for v in values}))


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
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


class Store:
    """Async repository over one SQLite file; create with ``await Store.open(path)``.

    All methods are coroutines that run on the store's own thread. Call ``await close()``
    (or use ``async with``) when done; it waits for queued work, then closes the file.
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
    ) -> Store:
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

    async def __aenter__(self) -> Store:
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
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _write).
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

    # --- users -----------------------------------------------------------------------------

    async def put_user(self, user: User) -> None:
        """Store or replace (re-enrollment) a user's credential.

        Raises ``ConflictError`` if the fingerprint belongs to another user.
        """
        _check_text("user id", user.user_id)
        _check_bytes("credential", user.credential)
        _check_bytes("fingerprint", user.fingerprint)
        _check_int("serial", user.serial)
        await self._call("store user", _put_user, user)

    async def get_user(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        return await self._call("read user", _get_user, "user_id", user_id)

    async def get_user_by_fingerprint(self, fingerprint: bytes) -> User | None:
        """The user whose credential has this fingerprint, or None."""
        return await self._call("read user", _get_user, "fingerprint", bytes(fingerprint))

    async def list_users(self) -> list[User]:
        """All users, by user id."""
        return await self._call("list users", _list_users)

    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        """The enrolled users among ``user_ids`` (each once), in one store call."""
        wanted = _check_ids("user id", dict.fromkeys(user_ids))
        return await self._call("read users", _get_users, wanted)

    # --- revocations -----------------------------------------------------------------------

    async def put_revocations(
        self,
        version: int,
        signed: bytes,
        revoked_user_ids: Iterable[str],
        revoked_serials: Iterable[int],
    ) -> None:
        """Replace the revocation list with a newer one and the ids it revokes.

        Raises ``StaleVersionError`` unless ``version`` is higher than the stored list's.
        """
        _check_int("revocation list version", version)
        signed = _check_bytes("revocation list", signed)
        users = _check_ids("revoked user id", revoked_user_ids)
        serials = tuple(sorted({_check_int("revoked serial", s) for s in revoked_serials}))
        await self._call("store revocation list", _put_revocations, version, signed, users, serials)

    async def get_revocations(self) -> RevocationList | None:
        """The stored revocation list, or None if none was ever stored."""
        return await self._call("read revocation list", _get_revocations)

    async def is_revoked(self, user_id: str, serial: int) -> bool:
        """True if the user, or the credential with this serial, is revoked."""
        _check_int("serial", serial)
        return await self._call("check revocation", _is_revoked, user_id, serial)

    # --- channels and rosters --------------------------------------------------------------

    async def create_channel(self, name: str, now: float) -> int:
        """Create a channel and return its new u32 id (ids are never reused).

        Raises ``ConflictError`` if the name is taken.
        """
        _check_text("channel name", name)
        return await self._call("create channel", _create_channel, name, now)

    async def get_channel(self, channel_id: int) -> Channel | None:
        """The channel with this id, or None."""
        return await self._call("read channel", _get_channel, "channel_id", channel_id)

    async def channel_by_name(self, name: str) -> Channel | None:
        """The channel with this name, or None."""
        return await self._call("read channel", _get_channel, "name", name)

    async def list_channels(self) -> list[Channel]:
        """All channels, by id."""
        return await self._call("list channels", _list_channels)

    async def put_roster(
        self, channel_id: int, version: int, signed: bytes, members: Iterable[str]
    ) -> None:
        """Replace a channel's signed roster and member set with a newer version.

        Key envelopes of users no longer on the roster are deleted, so a removed member is
        not handed the channel's key again. Raises ``NotFoundError`` for an unknown channel
        and ``StaleVersionError`` unless ``version`` is higher than the stored roster's.
        """
        _check_channel_id(channel_id)
        _check_int("roster version", version)
        signed = _check_bytes("roster", signed)
        member_ids = _check_ids("member id", members)
        await self._call("store roster", _put_roster, channel_id, version, signed, member_ids)

    async def get_roster(self, channel_id: int) -> Roster | None:
        """The channel's stored roster, or None."""
        return await self._call("read roster", _get_roster, channel_id)

    async def channels_of(self, user_id: str) -> list[int]:
        """Ids of the channels whose current roster lists the user, ascending."""
        return await self._call("read memberships", _channels_of, user_id)

    # --- key envelopes ---------------------------------------------------------------------

    async def put_envelopes(
        self, channel_id: int, epoch: int, envelopes: Mapping[str, bytes], now: float
    ) -> int:
        """Store one epoch's key envelopes for a channel in one transaction.

        Each member keeps only the envelope of the highest epoch seen; an envelope for an
        older epoch than the member's stored one is skipped. Returns how many were stored.
        Raises ``NotFoundError`` for an unknown channel.
        """
        _check_channel_id(channel_id)
        _check_int("epoch", epoch)
        rows = [
            (channel_id, _check_text("recipient", r), epoch, _check_bytes("envelope", b), now)
            for r, b in envelopes.items()
        ]
        return await self._call("store key envelopes", _put_envelopes, channel_id, rows)

    async def envelopes_for(self, user_id: str) -> list[KeyEnvelope]:
        """The user's latest envelope on every channel, by channel id."""
        return await self._call("read key envelopes", _envelopes_for, user_id)

    # --- messages --------------------------------------------------------------------------

    async def store_message(
        self,
        message_id: bytes,
        from_user: str,
        to_user: str | None,
        to_channel: int | None,
        sealed: bytes,
        sent_at: float,
        recipients: Iterable[str],
    ) -> bool:
        """Store a sealed message and a pending delivery per recipient.

        Exactly one of ``to_user`` and ``to_channel`` must be set (the other None). Returns False, changing
        nothing, if a message with this 16-byte id is already stored (a client retry).
        """
        message_id = _check_bytes("message id", message_id, length=MESSAGE_ID_LEN)
        _check_text("sender", from_user)
        sealed = _check_bytes("sealed message", sealed)
        if (to_user is None) == (to_channel is None):
            raise StoreError("a message needs exactly one of to_user and to_channel")
        if to_user is not None:
            _check_text("to_user", to_user)
        if to_channel is not None:
            _check_channel_id(to_channel)
        who = _check_ids("recipient", recipients)
        row = (message_id, from_user, to_user, to_channel, sealed, sent_at)
        return await self._call("store message", _store_message, row, who)

    async def get_message(self, message_id: bytes) -> StoredMessage | None:
        """The message with this id, or None."""
        return await self._call("read message", _get_message, bytes(message_id))

    async def pending_for(self, user_id: str, limit: int = 1000) -> list[StoredMessage]:
        """Up to ``limit`` messages not yet delivered to the user, oldest first (send order)."""
        _check_int("limit", limit, 1)
        return await self._call("read pending messages", _pending_for, user_id, limit)

    async def mark_delivered(self, message_id: bytes, recipient: str, now: float) -> bool:
        """Record delivery; False if there is no such pending delivery (unknown or already)."""
        return await self._call(
            "mark message delivered", _mark_delivered, bytes(message_id), recipient, now
        )

    async def mark_read(self, message_id: bytes, recipient: str, now: float) -> bool:
        """Record that the recipient read it (which implies delivery); False if unknown or
        already read."""
        return await self._call("mark message read", _mark_read, bytes(message_id), recipient, now)

    async def deliveries(self, message_id: bytes) -> list[Delivery]:
        """Delivery state of a message per recipient, by recipient."""
        return await self._call("read deliveries", _deliveries, bytes(message_id))

    async def prune_messages(
        self,
        now: float,
        retention_s: float = DEFAULT_MESSAGE_RETENTION_S,
        *,
        include_channel_messages: bool = False,
    ) -> int:
        """Delete direct messages (and, if asked, channel messages) sent before
        ``now - retention_s``, delivered or not; returns how many were deleted."""
        cutoff = now - retention_s
        total = 0
        while True:  # chunked: other calls get the store thread between chunks
            n = await self._call(
                "prune messages", _prune_messages, cutoff, include_channel_messages
            )
            total += n
            if n < _PRUNE_CHUNK:
                return total

    # --- emergencies -----------------------------------------------------------------------

    async def raise_emergency(
        self,
        alert_id: bytes,
        user_id: str,
        channel_id: int | None,
        sealed_location: bytes | None,
        now: float,
    ) -> EmergencyRaise:
        """Record a press of the emergency button: one active alert per user.

        The user's active alert, if any, takes the press (its id, channel and ack stay; the
        location, unless ``sealed_location`` is None, and the time are the new ones), so a radio
        that sends alerts with fresh ids as fast as it can still makes one emergency. Otherwise
        a new alert ``alert_id`` is created on ``channel_id``. A press naming a cancelled or
        another user's alert changes nothing (see :class:`EmergencyRaise`).

        Raises ``NotFoundError`` if a new alert's ``channel_id`` does not exist.
        """
        alert_id = _check_bytes("alert id", alert_id, max_len=MAX_ALERT_ID_LEN)
        _check_text("user id", user_id)
        if channel_id is not None:
            _check_channel_id(channel_id)
        location = _check_optional_bytes("sealed location", sealed_location)
        row = (alert_id, user_id, channel_id, location, now)
        return await self._call("store emergency", _raise_emergency, row)

    async def ack_emergency(self, alert_id: bytes, by: str, now: float) -> bool:
        """Acknowledge an alert; False if it was already acknowledged or cancelled.

        Raises ``NotFoundError`` for an unknown alert id.
        """
        _check_text("acknowledging user", by)
        return await self._call("acknowledge emergency", _ack_emergency, bytes(alert_id), by, now)

    async def cancel_emergency(self, alert_id: bytes, by: str, now: float) -> bool:
        """Cancel an alert; False if it was already cancelled.

        Raises ``NotFoundError`` for an unknown alert id.
        """
        _check_text("cancelling user", by)
        return await self._call("cancel emergency", _cancel_emergency, bytes(alert_id), by, now)

    async def get_emergency(self, alert_id: bytes) -> Emergency | None:
        """The alert with this id, or None."""
        return await self._call("read emergency", _get_emergency, bytes(alert_id))

    async def active_emergencies(self) -> list[Emergency]:
        """Alerts not cancelled: unacknowledged ones first, then each group oldest first."""
        return await self._call("read emergencies", _active_emergencies)

    # --- presence --------------------------------------------------------------------------

    async def put_presence(self, presence: Presence) -> None:
        """Store the user's whole presence record (a None location clears the stored one)."""
        _check_text("user id", presence.user_id)
        _check_optional_bytes("sealed location", presence.sealed_location)
        await self._call("store presence", _put_presence, presence)

    async def get_presence(self, user_id: str) -> Presence | None:
        """The user's presence, or None if never seen."""
        return await self._call("read presence", _get_presence, user_id)

    async def all_presence(self) -> list[Presence]:
        """Every stored presence, by user id."""
        return await self._call("read presence", _all_presence)

    # --- talk bursts -----------------------------------------------------------------------

    async def start_burst(
        self, channel_id: int, burst_id: int, talker: str, priority: int, started_at: float
    ) -> int:
        """Log the start of a talk burst; returns its ``burst_key``.

        Raises ``NotFoundError`` for an unknown channel.
        """
        _check_channel_id(channel_id)
        _check_int("burst id", burst_id)
        _check_text("talker", talker)
        _check_int("priority", priority)
        row = (channel_id, burst_id, talker, priority, started_at)
        return await self._call("log burst start", _start_burst, row)

    async def end_burst(self, burst_key: int, duration: float, outcome: str) -> None:
        """Record how long a burst lasted and how it ended (e.g. "released", "revoked").

        Raises ``NotFoundError`` for an unknown burst.
        """
        _check_int("burst key", burst_key)
        await self._call("log burst end", _end_burst, burst_key, duration, outcome)

    async def record_frames(self, burst_key: int, frames: Iterable[tuple[int, int, bytes]]) -> int:
        """Append a batch of sealed frames to a burst's recording in ONE transaction.

        Call it with the server's buffer (about half a second of frames), never per frame.
        A sequence number already recorded is skipped (duplicate datagram). Returns how
        many frames were stored. Raises ``NotFoundError`` for an unknown burst.
        """
        _check_int("burst key", burst_key)
        # Checked on the store thread: a large batch must not hold up the event loop.
        return await self._call("record frames", _record_frames, burst_key, list(frames))

    async def recent_bursts(self, channel_id: int, limit: int = 20) -> list[Burst]:
        """The channel's last ``limit`` bursts, newest first."""
        _check_int("limit", limit, 1)
        return await self._call("read bursts", _recent_bursts, channel_id, limit)

    async def get_burst(self, channel_id: int, burst_key: int) -> Burst | None:
        """The burst ``burst_key`` if it was recorded on ``channel_id``, else None."""
        _check_int("burst key", burst_key)
        return await self._call("read burst", _get_burst, channel_id, burst_key)

    async def burst_frames(self, burst_key: int) -> list[BurstFrame]:
        """A burst's recorded frames in sequence order (empty once pruned)."""
        return await self._call("read burst frames", _burst_frames, burst_key)

    async def prune_recordings(self, older_than: float) -> int:
        """Delete the frames of bursts started before ``older_than``; the burst log stays.

        Returns how many frames were deleted.
        """
        total = 0
        while True:  # chunked: other calls get the store thread between chunks
            bursts, frames = await self._call("prune recordings", _prune_recordings, older_than)
            total += frames
            if bursts < _PRUNE_CHUNK:
                return total


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


# --- operations (store thread; each takes the connection first) -------------------------------


def _require_channel(conn: sqlite3.Connection, channel_id: int) -> None:
    if (
        conn.execute("SELECT 1 FROM channels WHERE channel_id = ?", (channel_id,)).fetchone()
        is None
    ):
        raise NotFoundError(f"channel {channel_id} does not exist: create it first")


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


_USER_COLUMNS = (
    "user_id, display_name, role, device_id, credential, fingerprint, serial, enrolled_at"
)


def _put_user(conn: sqlite3.Connection, u: User) -> None:
    with _write(conn):
        owner = conn.execute(
            "SELECT user_id FROM users WHERE fingerprint = ? AND user_id <> ?",
            (bytes(u.fingerprint), u.user_id),
        ).fetchone()
        if owner is not None:
            raise ConflictError(
                f"credential fingerprint of {u.user_id!r} already belongs to user {owner[0]!r}: "
                f"enroll a new key for one of them"
            )
        conn.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name, "
            "role = excluded.role, device_id = excluded.device_id, "
            "credential = excluded.credential, fingerprint = excluded.fingerprint, "
            "serial = excluded.serial, enrolled_at = excluded.enrolled_at",
            (
                u.user_id,
                u.display_name,
                u.role,
                u.device_id,
                bytes(u.credential),
                bytes(u.fingerprint),
                u.serial,
                u.enrolled_at,
            ),
        )


def _get_user(conn: sqlite3.Connection, column: str, value: object) -> User | None:
    # column is one of our own literals, never caller data
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else _user(row)


def _get_users(conn: sqlite3.Connection, user_ids: tuple[str, ...]) -> list[User]:
    found: list[User] = []
    for start in range(0, len(user_ids), 500):  # SQLite's bound-parameter limit is 999+
        chunk = user_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id IN ({marks}) ORDER BY user_id",
            chunk,
        ).fetchall()
        found.extend(_user(r) for r in rows)
    return found


def _list_users(conn: sqlite3.Connection) -> list[User]:
    rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY user_id").fetchall()
    return [_user(r) for r in rows]


def _put_revocations(
    conn: sqlite3.Connection,
    version: int,
    signed: bytes,
    users: tuple[str, ...],
    serials: tuple[int, ...],
) -> None:
    with _write(conn):
        row = conn.execute("SELECT version FROM revocation_list").fetchone()
        if row is not None and version <= row[0]:
            raise StaleVersionError(
                f"revocation list version {version} is not newer than the stored version "
                f"{row[0]}: sign a new list with a higher version"
            )
        conn.execute(
            "INSERT OR REPLACE INTO revocation_list (singleton, version, signed) VALUES (1, ?, ?)",
            (version, signed),
        )
        conn.execute("DELETE FROM revoked_users")
        conn.execute("DELETE FROM revoked_serials")
        conn.executemany("INSERT INTO revoked_users (user_id) VALUES (?)", [(u,) for u in users])
        conn.executemany("INSERT INTO revoked_serials (serial) VALUES (?)", [(s,) for s in serials])


def _get_revocations(conn: sqlite3.Connection) -> RevocationList | None:
    row = conn.execute("SELECT version, signed FROM revocation_list").fetchone()
    if row is None:
        return None
    users = frozenset(r[0] for r in conn.execute("SELECT user_id FROM revoked_users"))
    serials = frozenset(r[0] for r in conn.execute("SELECT serial FROM revoked_serials"))
    return RevocationList(row[0], row[1], users, serials)


def _is_revoked(conn: sqlite3.Connection, user_id: str, serial: int) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM revoked_users WHERE user_id = ?) "
        "OR EXISTS (SELECT 1 FROM revoked_serials WHERE serial = ?)",
        (user_id, serial),
    ).fetchone()
    return bool(row[0])


def _create_channel(conn: sqlite3.Connection, name: str, now: float) -> int:
    with _write(conn):
        taken = conn.execute("SELECT channel_id FROM channels WHERE name = ?", (name,)).fetchone()
        if taken is not None:
            raise ConflictError(
                f"channel name {name!r} is taken by channel {taken[0]}: choose another"
            )
        try:
            cur = conn.execute("INSERT INTO channels (name, created_at) VALUES (?, ?)", (name, now))
        except sqlite3.IntegrityError as exc:
            raise StoreError("no channel ids left: all 2^32-1 have been used") from exc
        channel_id = cur.lastrowid
        assert channel_id is not None
        return channel_id


def _get_channel(conn: sqlite3.Connection, column: str, value: object) -> Channel | None:
    row = conn.execute(
        f"SELECT channel_id, name, created_at FROM channels WHERE {column} = ?", (value,)
    ).fetchone()
    return None if row is None else Channel(row[0], row[1], row[2])


def _list_channels(conn: sqlite3.Connection) -> list[Channel]:
    rows = conn.execute("SELECT channel_id, name, created_at FROM channels ORDER BY channel_id")
    return [Channel(r[0], r[1], r[2]) for r in rows]


def _put_roster(
    conn: sqlite3.Connection,
    channel_id: int,
    version: int,
    signed: bytes,
    members: tuple[str, ...],
) -> None:
    with _write(conn):
        _require_channel(conn, channel_id)
        row = conn.execute(
            "SELECT version FROM rosters WHERE channel_id = ?", (channel_id,)
        ).fetchone()
        if row is not None and version <= row[0]:
            raise StaleVersionError(
                f"roster version {version} for channel {channel_id} is not newer than the stored "
                f"version {row[0]}: sign the change with a higher version"
            )
        conn.execute(
            "INSERT OR REPLACE INTO rosters (channel_id, version, signed) VALUES (?, ?, ?)",
            (channel_id, version, signed),
        )
        conn.execute("DELETE FROM channel_members WHERE channel_id = ?", (channel_id,))
        conn.executemany(
            "INSERT INTO channel_members (user_id, channel_id) VALUES (?, ?)",
            [(m, channel_id) for m in members],
        )
        conn.execute(
            "DELETE FROM key_envelopes WHERE channel_id = ? AND recipient NOT IN "
            "(SELECT user_id FROM channel_members WHERE channel_id = ?)",
            (channel_id, channel_id),
        )


def _get_roster(conn: sqlite3.Connection, channel_id: int) -> Roster | None:
    row = conn.execute(
        "SELECT version, signed FROM rosters WHERE channel_id = ?", (channel_id,)
    ).fetchone()
    if row is None:
        return None
    members = conn.execute(
        "SELECT user_id FROM channel_members WHERE channel_id = ?", (channel_id,)
    )
    return Roster(channel_id, row[0], row[1], frozenset(m[0] for m in members))


def _channels_of(conn: sqlite3.Connection, user_id: str) -> list[int]:
    rows = conn.execute(
        "SELECT channel_id FROM channel_members WHERE user_id = ? ORDER BY channel_id", (user_id,)
    )
    return [r[0] for r in rows]


def _put_envelopes(
    conn: sqlite3.Connection, channel_id: int, rows: list[tuple[int, str, int, bytes, float]]
) -> int:
    with _write(conn):
        _require_channel(conn, channel_id)
        before = conn.total_changes
        # The WHERE on the upsert keeps a newer epoch's envelope if an older one arrives late.
        conn.executemany(
            "INSERT INTO key_envelopes (channel_id, recipient, epoch, envelope, stored_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, recipient) DO UPDATE SET "
            "epoch = excluded.epoch, envelope = excluded.envelope, stored_at = excluded.stored_at "
            "WHERE excluded.epoch >= key_envelopes.epoch",
            rows,
        )
        return conn.total_changes - before


def _envelopes_for(conn: sqlite3.Connection, user_id: str) -> list[KeyEnvelope]:
    rows = conn.execute(
        "SELECT channel_id, recipient, epoch, envelope, stored_at FROM key_envelopes "
        "WHERE recipient = ? ORDER BY channel_id",
        (user_id,),
    )
    return [KeyEnvelope(r[0], r[1], r[2], r[3], r[4]) for r in rows]


_MESSAGE_COLUMNS = "message_id, from_user, to_user, to_channel, sealed, sent_at"


def _message(row: Any) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5])


def _store_message(
    conn: sqlite3.Connection,
    row: tuple[bytes, str, str | None, int | None, bytes, float],
    recipients: tuple[str, ...],
) -> bool:
    with _write(conn):
        cur = conn.execute(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (message_id) DO NOTHING",
            row,
        )
        if cur.rowcount == 0:
            return False
        conn.executemany(
            "INSERT INTO deliveries (message_id, recipient) VALUES (?, ?)",
            [(row[0], r) for r in recipients],
        )
        return True


def _get_message(conn: sqlite3.Connection, message_id: bytes) -> StoredMessage | None:
    row = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)
    ).fetchone()
    return None if row is None else _message(row)


def _pending_for(conn: sqlite3.Connection, user_id: str, limit: int) -> list[StoredMessage]:
    rows = conn.execute(
        "SELECT m.message_id, m.from_user, m.to_user, m.to_channel, m.sealed, m.sent_at "
        "FROM deliveries AS d JOIN messages AS m ON m.message_id = d.message_id "
        "WHERE d.recipient = ? AND d.delivered_at IS NULL "
        "ORDER BY m.sent_at, m.rowid LIMIT ?",
        (user_id, limit),
    )
    return [_message(r) for r in rows]


def _mark_delivered(
    conn: sqlite3.Connection, message_id: bytes, recipient: str, now: float
) -> bool:
    with _write(conn):
        cur = conn.execute(
            "UPDATE deliveries SET delivered_at = ? "
            "WHERE message_id = ? AND recipient = ? AND delivered_at IS NULL",
            (now, message_id, recipient),
        )
        return cur.rowcount == 1


def _mark_read(conn: sqlite3.Connection, message_id: bytes, recipient: str, now: float) -> bool:
    with _write(conn):
        cur = conn.execute(
            "UPDATE deliveries SET read_at = ?, delivered_at = coalesce(delivered_at, ?) "
            "WHERE message_id = ? AND recipient = ? AND read_at IS NULL",
            (now, now, message_id, recipient),
        )
        return cur.rowcount == 1


def _deliveries(conn: sqlite3.Connection, message_id: bytes) -> list[Delivery]:
    rows = conn.execute(
        "SELECT recipient, delivered_at, read_at FROM deliveries WHERE message_id = ? "
        "ORDER BY recipient",
        (message_id,),
    )
    return [Delivery(r[0], r[1], r[2]) for r in rows]


def _prune_messages(conn: sqlite3.Connection, cutoff: float, include_channel: bool) -> int:
    with _write(conn):
        cur = conn.execute(
            "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE sent_at < ? "
            "AND (to_user IS NOT NULL OR ?) LIMIT ?)",
            (cutoff, include_channel, _PRUNE_CHUNK),
        )
        return cur.rowcount


_EMERGENCY_COLUMNS = (
    "alert_id, user_id, channel_id, sealed_location, raised_at, "
    "acked_by, acked_at, cancelled_by, cancelled_at, updated_at, presses"
)


def _emergency(r: Any) -> Emergency:
    return Emergency(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])


def _raise_emergency(
    conn: sqlite3.Connection, row: tuple[bytes, str, int | None, bytes | None, float]
) -> EmergencyRaise:
    alert_id, user_id, channel_id, location, now = row
    with _write(conn):
        named = _get_emergency(conn, alert_id)
        if named is not None and named.user_id != user_id:
            return EmergencyRaise("foreign", named)
        if named is not None and not named.active:
            return EmergencyRaise("closed", named)  # a late retry must not revive it
        active = conn.execute(
            f"SELECT {_EMERGENCY_COLUMNS} FROM emergencies "
            "WHERE user_id = ? AND cancelled_at IS NULL",
            (user_id,),
        ).fetchone()
        if active is not None:
            # The index emergencies_one_active (schema 2) makes this row the only one.
            conn.execute(
                "UPDATE emergencies SET sealed_location = coalesce(?, sealed_location), "
                "updated_at = ?, presses = presses + 1 WHERE alert_id = ?",
                (location, now, active[0]),
            )
            updated = _get_emergency(conn, active[0])
            assert updated is not None
            return EmergencyRaise("updated", updated)
        if channel_id is not None:
            _require_channel(conn, channel_id)
        conn.execute(
            "INSERT INTO emergencies (alert_id, user_id, channel_id, sealed_location, raised_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (alert_id, user_id, channel_id, location, now, now),
        )
        created = _get_emergency(conn, alert_id)
        assert created is not None
        return EmergencyRaise("created", created)


def _require_alert(conn: sqlite3.Connection, alert_id: bytes) -> None:
    if conn.execute("SELECT 1 FROM emergencies WHERE alert_id = ?", (alert_id,)).fetchone() is None:
        raise NotFoundError(f"emergency alert {alert_id.hex()} does not exist")


def _ack_emergency(conn: sqlite3.Connection, alert_id: bytes, by: str, now: float) -> bool:
    with _write(conn):
        _require_alert(conn, alert_id)
        cur = conn.execute(
            "UPDATE emergencies SET acked_by = ?, acked_at = ? "
            "WHERE alert_id = ? AND acked_at IS NULL AND cancelled_at IS NULL",
            (by, now, alert_id),
        )
        return cur.rowcount == 1


def _cancel_emergency(conn: sqlite3.Connection, alert_id: bytes, by: str, now: float) -> bool:
    with _write(conn):
        _require_alert(conn, alert_id)
        cur = conn.execute(
            "UPDATE emergencies SET cancelled_by = ?, cancelled_at = ? "
            "WHERE alert_id = ? AND cancelled_at IS NULL",
            (by, now, alert_id),
        )
        return cur.rowcount == 1


def _get_emergency(conn: sqlite3.Connection, alert_id: bytes) -> Emergency | None:
    row = conn.execute(
        f"SELECT {_EMERGENCY_COLUMNS} FROM emergencies WHERE alert_id = ?", (alert_id,)
    ).fetchone()
    return None if row is None else _emergency(row)


def _active_emergencies(conn: sqlite3.Connection) -> list[Emergency]:
    rows = conn.execute(
        f"SELECT {_EMERGENCY_COLUMNS} FROM emergencies WHERE cancelled_at IS NULL "
        "ORDER BY acked_at IS NOT NULL, raised_at, rowid"
    )
    return [_emergency(r) for r in rows]


def _put_presence(conn: sqlite3.Connection, p: Presence) -> None:
    with _write(conn):
        conn.execute(
            "INSERT OR REPLACE INTO presence (user_id, status, online, last_seen, sealed_location) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                p.user_id,
                p.status,
                1 if p.online else 0,
                p.last_seen,
                None if p.sealed_location is None else bytes(p.sealed_location),
            ),
        )


_PRESENCE_COLUMNS = "user_id, status, online, last_seen, sealed_location"


def _get_presence(conn: sqlite3.Connection, user_id: str) -> Presence | None:
    row = conn.execute(
        f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE user_id = ?", (user_id,)
    ).fetchone()
    return None if row is None else Presence(row[0], row[1], bool(row[2]), row[3], row[4])


def _all_presence(conn: sqlite3.Connection) -> list[Presence]:
    rows = conn.execute(f"SELECT {_PRESENCE_COLUMNS} FROM presence ORDER BY user_id")
    return [Presence(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]


def _start_burst(conn: sqlite3.Connection, row: tuple[int, int, str, int, float]) -> int:
    with _write(conn):
        _require_channel(conn, row[0])
        cur = conn.execute(
            "INSERT INTO bursts (channel_id, burst_id, talker, priority, started_at) "
            "VALUES (?, ?, ?, ?, ?)",
            row,
        )
        key = cur.lastrowid
        assert key is not None
        return key


def _require_burst(conn: sqlite3.Connection, burst_key: int) -> None:
    if conn.execute("SELECT 1 FROM bursts WHERE burst_key = ?", (burst_key,)).fetchone() is None:
        raise NotFoundError(f"talk burst {burst_key} does not exist")


def _end_burst(conn: sqlite3.Connection, burst_key: int, duration: float, outcome: str) -> None:
    with _write(conn):
        _require_burst(conn, burst_key)
        conn.execute(
            "UPDATE bursts SET duration = ?, outcome = ? WHERE burst_key = ?",
            (duration, outcome, burst_key),
        )


def _record_frames(
    conn: sqlite3.Connection, burst_key: int, frames: list[tuple[int, int, bytes]]
) -> int:
    rows = [
        (burst_key, _check_int("seq", seq), _check_int("flags", flags), _check_bytes("frame", f))
        for seq, flags, f in frames
    ]
    with _write(conn):
        row = conn.execute(
            "SELECT recorded FROM bursts WHERE burst_key = ?", (burst_key,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"talk burst {burst_key} does not exist")
        if not row[0]:
            conn.execute("UPDATE bursts SET recorded = 1 WHERE burst_key = ?", (burst_key,))
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO burst_frames (burst_key, seq, flags, frame) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (burst_key, seq) DO NOTHING",
            rows,
        )
        return conn.total_changes - before


def _recent_bursts(conn: sqlite3.Connection, channel_id: int, limit: int) -> list[Burst]:
    rows = conn.execute(
        "SELECT b.burst_key, b.channel_id, b.burst_id, b.talker, b.priority, b.started_at, "
        "b.duration, b.outcome, "
        "(SELECT count(*) FROM burst_frames AS f WHERE f.burst_key = b.burst_key) "
        "FROM bursts AS b WHERE b.channel_id = ? "
        "ORDER BY b.started_at DESC, b.burst_key DESC LIMIT ?",
        (channel_id, limit),
    )
    return [Burst(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]


def _get_burst(conn: sqlite3.Connection, channel_id: int, burst_key: int) -> Burst | None:
    row = conn.execute(
        "SELECT b.burst_key, b.channel_id, b.burst_id, b.talker, b.priority, b.started_at, "
        "b.duration, b.outcome, "
        "(SELECT count(*) FROM burst_frames AS f WHERE f.burst_key = b.burst_key) "
        "FROM bursts AS b WHERE b.channel_id = ? AND b.burst_key = ?",
        (channel_id, burst_key),
    ).fetchone()
    return None if row is None else Burst(*row)


def _burst_frames(conn: sqlite3.Connection, burst_key: int) -> list[BurstFrame]:
    rows = conn.execute(
        "SELECT seq, flags, frame FROM burst_frames WHERE burst_key = ? ORDER BY seq",
        (burst_key,),
    )
    return [BurstFrame(r[0], r[1], r[2]) for r in rows]


def _prune_recordings(conn: sqlite3.Connection, older_than: float) -> tuple[int, int]:
    with _write(conn):
        keys = conn.execute(
            "SELECT burst_key FROM bursts WHERE recorded = 1 AND started_at < ? LIMIT ?",
            (older_than, _PRUNE_CHUNK),
        ).fetchall()
        before = conn.total_changes
        conn.executemany("DELETE FROM burst_frames WHERE burst_key = ?", keys)
        frames = conn.total_changes - before
        conn.executemany("UPDATE bursts SET recorded = 0 WHERE burst_key = ?", keys)
        return len(keys), frames
