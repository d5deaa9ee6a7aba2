"""The PostgreSQL engine: the store a cluster's nodes share, and what it does when PG restarts.

One psycopg connection (sync, on the store thread) per store, as with SQLite. Each store
call is ONE transaction at SERIALIZABLE, committed when the call's function returns: the
nodes write the same rows (one active emergency per user, one roster version, message ids)
and SERIALIZABLE makes every such read-then-write behave as if the nodes took turns, as
``BEGIN IMMEDIATE`` makes SQLite's. A transaction PostgreSQL aborts for a conflict
(SQLSTATE 40001, or 40P01 for a deadlock) is run again from the start, up to
``_CONFLICT_TRIES`` times: the function sees the other node's committed write the second
time (a second message with the same id becomes "already stored", a second emergency
press from the same user updates the first).

When the connection is lost (PostgreSQL restarted, a network cut), the call reconnects and
runs again, retrying with backoff for ``reconnect_timeout_s`` (15 s by default), then fails
with a ``StoreError`` saying PostgreSQL is unreachable and what to check. Calls queued
behind it share that window instead of each waiting it out again. A lost connection
before COMMIT means the transaction did not happen, so running it again is safe. A
connection lost DURING COMMIT leaves it unknown whether the write landed: every write
transaction records its id first (``pg_current_xact_id``), and after reconnecting the
engine asks PostgreSQL (``pg_xact_status``) whether it committed. If it did, the call
returns the result it had computed; it is never run a second time, so no write is doubled,
idempotent or not (a revocation list would otherwise be refused as "not newer" than
itself, a burst logged twice). What the store acknowledged was committed by PostgreSQL
(durably: the engine turns ``synchronous_commit`` on for its sessions where the server
has it off), so a restart loses none of it.

Operator mistakes (wrong password, missing database, no CREATE privilege, a full disk,
a read-only standby) fail at once with a ``StoreError`` saying what to fix; the URL's
password never appears in a message.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.numeric import Int8Dumper

from ptt_server.store.errors import StoreError
from ptt_server.store.pg_schema import ensure_schema

_T = TypeVar("_T")
_Raw = psycopg.Connection[tuple[Any, ...]]

_CONFLICT_TRIES = 12
"""Runs of one call that PostgreSQL may abort for a conflict before the call fails."""
_RETRY_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, cannot connect now
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 1.0

# Connection settings applied unless the URL sets them. Keepalives and tcp_user_timeout
# notice a PostgreSQL host that vanished without closing the socket within about 10 s
# (instead of the kernel's two hours), so the call can reconnect within its bound.
_DEFAULTS: dict[str, str | int] = {
    "application_name": "ptt-server",
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

# libpq reports these when the server answered and refused: retrying cannot help.
_REFUSALS = (
    "authentication failed",
    "no password supplied",
    "password is required",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "not permitted to log in",
    "certificate",
)


@functools.lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """``sql`` with its ``?`` placeholders as psycopg's ``%s`` and literal ``%`` as ``%%``.

    A ``?`` inside a quoted literal stays (none of our statements has one, but a pattern
    could); every ``%`` is doubled, inside literals too, as psycopg's format requires.
    """
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted  # '' inside a literal toggles twice: still inside
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class PgConnection:
    """One run of a store call on the PostgreSQL connection, as a ``Connection``."""

    def __init__(self, raw: _Raw) -> None:
        self.raw = raw
        self.xid: str | None = None
        """The transaction's id once it wrote (see :meth:`write_transaction`)."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        # Always a params tuple, even empty: psycopg then applies the %% escapes.
        return self.raw.execute(to_pg(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        # psycopg pipelines the rows (one round trip per batch, not per row) and sums
        # rowcount over them, like sqlite3.
        cur.executemany(to_pg(sql), list(rows))
        return cur

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """The call's transaction is already open; the engine commits it when the call
        returns. Here its id is taken, so a COMMIT lost with the connection can be checked."""
        if self.xid is None:
            row = self.raw.execute("SELECT pg_current_xact_id()::text").fetchone()
            assert row is not None
            self.xid = str(row[0])
        yield

    def is_id_exhausted(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.errors.SequenceGeneratorLimitExceeded)


def describe(url: str) -> str:
    """``url`` as ``postgresql://USER@HOST:PORT/DB``: for messages, never with a password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(invalid URL)"
    user = params.get("user") or "(default user)"
    host = params.get("host") or "localhost"
    port = params.get("port") or 5432
    db = params.get("dbname") or user
    return f"postgresql://{user}@{host}:{port}/{db}"


def _line(text: str) -> str:
    text = text.strip().replace("connection failed: ", "")
    return text.splitlines()[0] if text else ""


def _first_line(exc: BaseException) -> str:
    return _line(str(exc)) or type(exc).__name__


class PostgresEngine:
    """The store's PostgreSQL database: its connection, reconnection and retries."""

    def __init__(self, url: str, reconnect_timeout_s: float) -> None:
        self.location = describe(url)
        try:
            given = conninfo_to_dict(url)
            ports = str(given.get("port") or "5432").split(",")
            if not all(p.strip().isdigit() for p in ports):
                raise psycopg.ProgrammingError(f"port {given.get('port')!r} is not a number")
        except psycopg.Error as exc:
            raise StoreError(
                f"store URL is not a valid PostgreSQL URL ({_first_line(exc)}): write it as "
                f"postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            ) from None
        # The URL's own settings win over our defaults.
        self._conninfo = make_conninfo(
            url, **{k: v for k, v in _DEFAULTS.items() if k not in given}
        )
        self._hostport = f"{given.get('host') or 'localhost'}:{given.get('port') or 5432}"
        self._reconnect_timeout_s = max(0.0, reconnect_timeout_s)
        self._raw: _Raw | None = None  # touched only on the store thread
        self._closed = False
        self._down_since: float | None = None  # when the current outage began
        self.failed_connects = 0
        """Connection attempts that failed since opening (a metric; tests wait on it)."""

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        deadline = time.monotonic() + self._reconnect_timeout_s
        while True:
            raw = self._connection("open the store", deadline)
            try:
                ensure_schema(raw, self.location)
                return
            except psycopg.Error as exc:
                if not self._lost(raw, exc):
                    self.close()
                    raise StoreError(self._explain("open the store", exc)) from exc
                self._drop()
                self._check_deadline("open the store", deadline, exc)
            except BaseException:
                self.close()
                raise
            finally:
                if not raw.closed:
                    raw.isolation_level = psycopg.IsolationLevel.SERIALIZABLE

    def close(self) -> None:
        self._closed = True
        self._drop()

    # --- one call ----------------------------------------------------------------------------

    def run(self, op: str, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        if self._closed:
            raise StoreError(f"cannot {op}: the store {self.location} is closed")
        deadline = time.monotonic() + self._reconnect_timeout_s
        conflicts = 0
        while True:
            raw = self._connection(op, deadline)
            conn = PgConnection(raw)
            committing = False
            try:
                result = fn(conn, *args)
                committing = True
                raw.commit()
                return result
            except psycopg.Error as exc:
                if self._lost(raw, exc):
                    self._drop()
                    if committing and conn.xid is not None:
                        if self._committed(op, conn.xid):
                            return result  # it landed: never run it twice
                    self._check_deadline(op, deadline, exc)
                    continue  # not committed: the transaction never happened
                self._rollback(raw)
                if exc.sqlstate in _RETRY_STATES and conflicts < _CONFLICT_TRIES - 1:
                    conflicts += 1
                    # Jittered, growing: two nodes that collided do not collide again.
                    time.sleep(random.uniform(0, min(_BACKOFF_MAX_S, 0.005 * 2**conflicts)))
                    continue
                raise StoreError(self._explain(op, exc)) from exc
            except StoreError:
                self._rollback(raw)
                raise
            except OverflowError as exc:
                self._rollback(raw)
                raise StoreError(
                    f"cannot {op}: a number is too large for the store ({exc})"
                ) from exc
            except UnicodeEncodeError as exc:
                self._rollback(raw)
                raise StoreError(f"cannot {op}: a text value is not valid Unicode ({exc})") from exc
            except BaseException:
                self._rollback(raw)
                raise

    # --- the connection --------------------------------------------------------------------

    def _connect(self) -> _Raw:
        raw = psycopg.connect(self._conninfo, autocommit=False)
        raw.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        # Every int goes as BIGINT: one outside i64 is refused by PostgreSQL (22003), as
        # sqlite3 refuses it, instead of being sent as NUMERIC and compared as one.
        raw.adapters.register_dumper(int, Int8Dumper)
        try:
            # An acknowledged write must survive a PostgreSQL crash: with synchronous_commit
            # off it may not, so this session turns it on (any other setting is durable).
            if raw.execute("SHOW synchronous_commit").fetchone() == ("off",):
                raw.execute("SET synchronous_commit = on")
            raw.commit()
        except BaseException:
            raw.close()
            raise
        return raw

    def _connection(self, op: str, deadline: float) -> _Raw:
        """The open connection, or a new one: retried with backoff until ``deadline`` (or
        the end of the current outage's window, if earlier)."""
        raw = self._raw
        if raw is not None and not raw.closed:
            return raw
        self._drop()
        delay = _BACKOFF_FIRST_S
        while True:
            if self._closed:
                raise StoreError(f"cannot {op}: the store {self.location} is closed")
            try:
                self._raw = self._connect()
                self._down_since = None
                return self._raw
            except psycopg.OperationalError as exc:
                self.failed_connects += 1
                if any(word in str(exc).lower() for word in _REFUSALS):
                    raise StoreError(self._refused(op, exc)) from exc
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                end = min(deadline, self._down_since + self._reconnect_timeout_s)
                if now >= end:
                    raise StoreError(self._unreachable(op, exc)) from exc
                time.sleep(min(delay, end - now))
                delay = min(delay * 2, _BACKOFF_MAX_S)
            except psycopg.Error as exc:
                raise StoreError(self._explain(op, exc)) from exc

    def _committed(self, op: str, xid: str) -> bool:
        """Whether transaction ``xid``, whose COMMIT was lost with the connection, committed.

        PostgreSQL gets a window of its own to come back and tell: the call's may be spent.
        """
        deadline = time.monotonic() + self._reconnect_timeout_s
        while True:
            try:
                raw = self._connection(op, deadline)
            except StoreError as exc:
                raise StoreError(self._unknown(op, xid, str(exc.__cause__ or exc))) from exc
            try:
                row = raw.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
                raw.rollback()
            except psycopg.Error as exc:
                if self._lost(raw, exc):
                    self._drop()
                    if time.monotonic() < deadline:
                        continue
                raise StoreError(self._unknown(op, xid, _first_line(exc))) from exc
            status = None if row is None else row[0]
            if status == "committed":
                return True
            if status == "aborted":
                return False
            if status != "in progress" or time.monotonic() >= deadline:
                raise StoreError(self._unknown(op, xid, f"its status is {status!r}"))
            # The old session is still finishing its COMMIT (a network cut, not a restart).
            time.sleep(_BACKOFF_FIRST_S)

    def _lost(self, raw: _Raw, exc: psycopg.Error) -> bool:
        if raw.closed:
            return True
        if exc.sqlstate in _LOST_STATES:
            raw.close()
            return True
        return False

    def _drop(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    def _rollback(self, raw: _Raw) -> None:
        try:
            raw.rollback()
        except psycopg.Error:
            self._drop()  # a connection that cannot roll back is not reused

    def _check_deadline(self, op: str, deadline: float, exc: BaseException) -> None:
        if time.monotonic() >= deadline:
            raise StoreError(self._unreachable(op, exc)) from exc

    # --- messages ---------------------------------------------------------------------------

    def _unreachable(self, op: str, exc: BaseException) -> str:
        return (
            f"cannot {op}: PostgreSQL at {self._hostport} ({self.location}) is unreachable "
            f"({_first_line(exc)}) and did not come back within "
            f"{self._reconnect_timeout_s:g} s; nothing was written. Check that PostgreSQL is "
            f"running and accepts connections, and that this node reaches {self._hostport} "
            f"(host, port, firewall)"
        )

    def _refused(self, op: str, exc: BaseException) -> str:
        detail = _first_line(exc)
        if "database" in detail and "does not exist" in detail:
            return (
                f"cannot {op}: {detail} on PostgreSQL at {self._hostport}: create it "
                f"(createdb -O USER DATABASE) or fix the database in the store URL"
            )
        return (
            f"cannot {op}: PostgreSQL at {self._hostport} refused the connection ({detail}): "
            f"check the user and password in the store URL (or ~/.pgpass) and the server's "
            f"pg_hba.conf"
        )

    def _unknown(self, op: str, xid: str, why: str) -> str:
        return (
            f"cannot {op}: the connection to PostgreSQL at {self._hostport} was lost during "
            f"COMMIT and whether transaction {xid} committed cannot be told ({_line(why)}): "
            f"check that PostgreSQL is back, look the write up, and retry it only if it is "
            f"missing"
        )

    def _explain(self, op: str, exc: psycopg.Error) -> str:
        state = exc.sqlstate or ""
        detail = _first_line(exc)
        where = f"PostgreSQL at {self._hostport}"
        if state == "53100":
            return f"cannot {op}: the disk of {where} is full ({detail}); free space and retry"
        if state.startswith("53"):
            return f"cannot {op}: {where} is out of resources ({detail}); retry later"
        if state == "25006":
            return (
                f"cannot {op}: {where} is read-only (a standby?); point the store URL at "
                f"the primary"
            )
        if state == "42501":
            return (
                f"cannot {op}: the store's user may not do this on {where} ({detail}): make "
                f"it the owner of the database, or GRANT CREATE ON SCHEMA public to it"
            )
        if state.startswith("28"):
            return self._refused(op, exc)
        if state == "22003":
            return f"cannot {op}: a number is too large for the store ({detail})"
        if isinstance(exc, psycopg.DataError) and "NUL" in detail:
            return f"cannot {op}: a text value contains a NUL character, which PostgreSQL refuses"
        if state in _RETRY_STATES:
            return (
                f"cannot {op}: {where} aborted it {_CONFLICT_TRIES} times for conflicting "
                f"with other nodes' writes; retry"
            )
        if state in ("42P01", "42703"):
            return (
                f"cannot {op}: the store's tables in {self.location} are missing or changed "
                f"({detail}); restore a backup"
            )
        return f"cannot {op} in PostgreSQL store {self.location}: {detail}"
