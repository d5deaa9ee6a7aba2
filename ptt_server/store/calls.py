"""The private-call log: one row per call attempt, from the offer to its end.

The relay carries only a private call's signalling, so this is what it knows: who called
whom, the mode, whether it was an emergency call, when it was offered, answered and ended,
and how it ended. Written by ``ptt_server.handlers.calls`` as the call goes; read by the
call log request (a user's own calls; every call for a dispatcher).
"""

from __future__ import annotations

from ptt_protocol import control
from ptt_server.store.checks import check_text
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.errors import StoreError

RELAY_RESTARTED = "relay_restarted"
"""The outcome of a call the relay was carrying when it stopped."""

_COLUMNS = (
    "call_id, caller, callee, mode, emergency, offered_at, answered_at, ended_at, outcome, ended_by"
)


class CallTables(StoreConnection):
    """``Store`` methods over ``calls``."""

    async def log_call(self, record: control.CallRecord) -> None:
        """Record a new call attempt (a repeat of a logged call id changes nothing)."""
        if len(record.call_id) != 16:
            raise StoreError("a call id is 16 bytes")
        for what, text in (("caller", record.caller), ("callee", record.callee)):
            check_text(what, text)
        await self._call("log call", _log_call, record)

    async def call_logged(self, call_id: bytes) -> bool:
        """Whether a call with this id was ever logged (a caller may not use it again)."""
        return await self._call("read call log", _logged, call_id)

    async def call_answered(self, call_id: bytes, at: float) -> None:
        await self._call("log call answer", _answered, call_id, at)

    async def call_ended(self, call_id: bytes, at: float, outcome: str, ended_by: str) -> None:
        check_text("call outcome", outcome)
        await self._call("log call end", _ended, call_id, at, outcome, ended_by)

    async def close_calls_left_open(self, now: float) -> int:
        """End, as ``relay_restarted`` at ``now``, the calls a stopped or crashed relay left
        open (their parties' sessions ended with it); returns how many."""
        return await self._call("close open calls", _close_open, now)

    async def open_call_ids(self) -> list[bytes]:
        """The ids of the calls not ended yet (a cluster node asks each one's owner whether
        it still carries it, and closes those whose owner is gone)."""
        return await self._call("read call log", _open_ids)

    async def close_call_left_open(self, call_id: bytes, now: float) -> bool:
        """End one call, as ``relay_restarted``, if still open; True if it was."""
        return await self._call("close open call", _close_one, call_id, now)

    async def call_log(self, user: str | None, limit: int) -> list[control.CallRecord]:
        """The latest ``limit`` calls, newest first: ``user``'s (as caller or callee), or
        everyone's when ``user`` is None."""
        return await self._call("read call log", _call_log, user, max(1, min(limit, 200)))


def _log_call(conn: Connection, r: control.CallRecord) -> None:
    with write_transaction(conn):
        conn.execute(
            f"INSERT INTO calls ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (call_id) DO NOTHING",
            (
                r.call_id,
                r.caller,
                r.callee,
                r.mode,
                int(r.emergency),
                r.offered_at,
                r.answered_at,
                r.ended_at,
                r.outcome,
                r.ended_by,
            ),
        )


def _logged(conn: Connection, call_id: bytes) -> bool:
    return conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone() is not None


def _answered(conn: Connection, call_id: bytes, at: float) -> None:
    with write_transaction(conn):
        conn.execute(
            "UPDATE calls SET answered_at = ? WHERE call_id = ? AND answered_at IS NULL",
            (at, call_id),
        )


def _ended(conn: Connection, call_id: bytes, at: float, outcome: str, by: str) -> None:
    with write_transaction(conn):
        conn.execute(
            "UPDATE calls SET ended_at = ?, outcome = ?, ended_by = ?"
            " WHERE call_id = ? AND ended_at IS NULL",
            (at, outcome, by, call_id),
        )


def _close_open(conn: Connection, now: float) -> int:
    with write_transaction(conn):
        # A CASE, not max()/GREATEST: SQLite has only the one, PostgreSQL only the other.
        cursor = conn.execute(
            "UPDATE calls SET ended_at = CASE WHEN offered_at > ? THEN offered_at ELSE ? END, "
            "outcome = ? WHERE ended_at IS NULL",
            (now, now, RELAY_RESTARTED),
        )
        return cursor.rowcount


def _open_ids(conn: Connection) -> list[bytes]:
    rows = conn.execute("SELECT call_id FROM calls WHERE ended_at IS NULL").fetchall()
    return [bytes(row[0]) for row in rows]


def _close_one(conn: Connection, call_id: bytes, now: float) -> bool:
    with write_transaction(conn):
        cursor = conn.execute(
            "UPDATE calls SET ended_at = CASE WHEN offered_at > ? THEN offered_at ELSE ? END, "
            "outcome = ? WHERE call_id = ? AND ended_at IS NULL",
            (now, now, RELAY_RESTARTED, call_id),
        )
        return bool(cursor.rowcount)


def _call_log(conn: Connection, user: str | None, limit: int) -> list[control.CallRecord]:
    if user is None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM calls ORDER BY offered_at DESC LIMIT ?", (limit,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM calls WHERE caller = ? OR callee = ?"
            " ORDER BY offered_at DESC LIMIT ?",
            (user, user, limit),
        ).fetchall()
    return [
        control.CallRecord(
            call_id=bytes(row[0]),
            caller=row[1],
            callee=row[2],
            mode=row[3],
            emergency=bool(row[4]),
            offered_at=row[5],
            answered_at=row[6],
            ended_at=row[7],
            outcome=row[8],
            ended_by=row[9],
        )
        for row in rows
    ]
