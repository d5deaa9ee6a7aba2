"""Each user's last known status and sealed location."""

from __future__ import annotations

from typing import Any

from ptt_protocol.control import STATUS_OFFLINE
from ptt_server.store.checks import check_optional_bytes, check_text
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.records import Presence


class PresenceTables(StoreConnection):
    """``Store`` methods over ``presence``."""

    async def put_presence(self, presence: Presence) -> None:
        """Store the user's whole presence record (a None location clears the stored one)."""
        check_text("user id", presence.user_id)
        check_optional_bytes("sealed location", presence.sealed_location)
        if presence.node is not None:
            check_text("node name", presence.node)
        await self._call("store presence", _put_presence, presence)

    async def get_presence(self, user_id: str) -> Presence | None:
        """The user's presence, or None if never seen."""
        return await self._call("read presence", _get_presence, user_id)

    async def all_presence(self) -> list[Presence]:
        """Every stored presence, by user id."""
        return await self._call("read presence", _all_presence)

    async def online_nodes(self) -> list[str]:
        """The nodes some user is stored online on, sorted."""
        return await self._call("read presence", _online_nodes)

    async def mark_node_offline(self, node: str, now: float) -> list[str]:
        """Store offline (seen last at ``now``) every user still online on ``node``, a node
        that died or restarted: the user ids changed, sorted. In one statement, and only
        rows that still name ``node``: a user whose radio logged in on another node since
        is that node's now, and stays online."""
        check_text("node name", node)
        return await self._call("mark a node's users offline", _mark_node_offline, node, now)


# --- SQL (store thread; each takes the connection first) ------------------------------------


def _put_presence(conn: Connection, p: Presence) -> None:
    with write_transaction(conn):
        conn.execute(
            "INSERT INTO presence (user_id, status, online, last_seen, sealed_location, node) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
            "status = excluded.status, online = excluded.online, "
            "last_seen = excluded.last_seen, sealed_location = excluded.sealed_location, "
            "node = excluded.node",
            (
                p.user_id,
                p.status,
                1 if p.online else 0,
                p.last_seen,
                None if p.sealed_location is None else bytes(p.sealed_location),
                p.node,
            ),
        )


def _online_nodes(conn: Connection) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT node FROM presence WHERE online = 1 AND node IS NOT NULL ORDER BY node"
    )
    return [r[0] for r in rows]


def _mark_node_offline(conn: Connection, node: str, now: float) -> list[str]:
    with write_transaction(conn):
        rows = conn.execute(
            "UPDATE presence SET online = 0, status = ?, last_seen = ? "
            "WHERE node = ? AND online = 1 RETURNING user_id",
            (STATUS_OFFLINE, now, node),
        ).fetchall()
    return sorted(r[0] for r in rows)


_PRESENCE_COLUMNS = "user_id, status, online, last_seen, sealed_location, node"


def _presence(r: Any) -> Presence:
    return Presence(r[0], r[1], bool(r[2]), r[3], r[4], r[5])


def _get_presence(conn: Connection, user_id: str) -> Presence | None:
    row = conn.execute(
        f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE user_id = ?", (user_id,)
    ).fetchone()
    return None if row is None else _presence(row)


def _all_presence(conn: Connection) -> list[Presence]:
    rows = conn.execute(f"SELECT {_PRESENCE_COLUMNS} FROM presence ORDER BY user_id")
    return [_presence(r) for r in rows]
