"""Each user's last known status and sealed location."""

from __future__ import annotations

from typing import Any

from ptt_server.store.checks import check_optional_bytes, check_text
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.records import Presence


class PresenceTables(StoreConnection):
    """``Store`` methods over ``presence``."""

    async def put_presence(self, presence: Presence) -> None:
        """Store the user's whole presence record (a None location clears the stored one)."""
        check_text("user id", presence.user_id)
        check_optional_bytes("sealed location", presence.sealed_location)
        await self._call("store presence", _put_presence, presence)

    async def get_presence(self, user_id: str) -> Presence | None:
        """The user's presence, or None if never seen."""
        return await self._call("read presence", _get_presence, user_id)

    async def all_presence(self) -> list[Presence]:
        """Every stored presence, by user id."""
        return await self._call("read presence", _all_presence)


# --- SQL (store thread; each takes the connection first) ------------------------------------


def _put_presence(conn: Connection, p: Presence) -> None:
    with write_transaction(conn):
        conn.execute(
            "INSERT INTO presence (user_id, status, online, last_seen, sealed_location) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
            "status = excluded.status, online = excluded.online, "
            "last_seen = excluded.last_seen, sealed_location = excluded.sealed_location",
            (
                p.user_id,
                p.status,
                1 if p.online else 0,
                p.last_seen,
                None if p.sealed_location is None else bytes(p.sealed_location),
            ),
        )


_PRESENCE_COLUMNS = "user_id, status, online, last_seen, sealed_location"


def _presence(r: Any) -> Presence:
    return Presence(r[0], r[1], bool(r[2]), r[3], r[4])


def _get_presence(conn: Connection, user_id: str) -> Presence | None:
    row = conn.execute(
        f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE user_id = ?", (user_id,)
    ).fetchone()
    return None if row is None else _presence(row)


def _all_presence(conn: Connection) -> list[Presence]:
    rows = conn.execute(f"SELECT {_PRESENCE_COLUMNS} FROM presence ORDER BY user_id")
    return [_presence(r) for r in rows]
