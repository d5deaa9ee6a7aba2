"""Sealed text and status messages and their delivery state per recipient."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ptt_server.store.checks import check_bytes, check_channel_id, check_ids, check_int, check_text
from ptt_server.store.connection import (
    PRUNE_CHUNK,
    Connection,
    StoreConnection,
    write_transaction,
)
from ptt_server.store.errors import StoreError
from ptt_server.store.records import Delivery, StoredMessage

DEFAULT_MESSAGE_RETENTION_S = 7 * 24 * 3600.0
"""Direct messages are kept 7 days, like Zello Work's offline messages."""

MESSAGE_ID_LEN = 16


class MessageTables(StoreConnection):
    """``Store`` methods over ``messages`` and ``deliveries``."""

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

        Exactly one of ``to_user`` and ``to_channel`` must be set (the other None). Returns
        False, changing nothing, if a message with this 16-byte id is already stored (a client
        retry).
        """
        message_id = check_bytes("message id", message_id, length=MESSAGE_ID_LEN)
        check_text("sender", from_user)
        sealed = check_bytes("sealed message", sealed)
        if (to_user is None) == (to_channel is None):
            raise StoreError("a message needs exactly one of to_user and to_channel")
        if to_user is not None:
            check_text("to_user", to_user)
        if to_channel is not None:
            check_channel_id(to_channel)
        who = check_ids("recipient", recipients)
        row = (message_id, from_user, to_user, to_channel, sealed, sent_at)
        return await self._call("store message", _store_message, row, who)

    async def get_message(self, message_id: bytes) -> StoredMessage | None:
        """The message with this id, or None."""
        return await self._call("read message", _get_message, bytes(message_id))

    async def pending_for(self, user_id: str, limit: int = 1000) -> list[StoredMessage]:
        """Up to ``limit`` messages not yet delivered to the user, oldest first (send order)."""
        check_int("limit", limit, 1)
        return await self._call("read pending messages", _pending_for, user_id, limit)

    async def mark_delivered(self, message_id: bytes, recipient: str, now: float) -> bool:
        """Record delivery; False if there is no such pending delivery (unknown or already)."""
        params = (now, bytes(message_id), recipient)
        return await self._call("mark message delivered", _update_delivery, _DELIVERED, params)

    async def mark_read(self, message_id: bytes, recipient: str, now: float) -> bool:
        """Record that the recipient read it (which implies delivery); False if unknown or
        already read."""
        params = (now, now, bytes(message_id), recipient)
        return await self._call("mark message read", _update_delivery, _READ, params)

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
            if n < PRUNE_CHUNK:
                return total


# --- SQL (store thread; each takes the connection first) ------------------------------------


_MESSAGE_COLUMNS = "message_id, from_user, to_user, to_channel, sealed, sent_at"


def _message(row: Any) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5])


def _store_message(
    conn: Connection,
    row: tuple[bytes, str, str | None, int | None, bytes, float],
    recipients: tuple[str, ...],
) -> bool:
    with write_transaction(conn):
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


def _get_message(conn: Connection, message_id: bytes) -> StoredMessage | None:
    row = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)
    ).fetchone()
    return None if row is None else _message(row)


def _pending_for(conn: Connection, user_id: str, limit: int) -> list[StoredMessage]:
    rows = conn.execute(
        "SELECT m.message_id, m.from_user, m.to_user, m.to_channel, m.sealed, m.sent_at "
        "FROM deliveries AS d JOIN messages AS m ON m.message_id = d.message_id "
        "WHERE d.recipient = ? AND d.delivered_at IS NULL "
        "ORDER BY m.sent_at, m.rowid LIMIT ?",
        (user_id, limit),
    )
    return [_message(r) for r in rows]


_DELIVERED = (
    "UPDATE deliveries SET delivered_at = ? "
    "WHERE message_id = ? AND recipient = ? AND delivered_at IS NULL"
)
_READ = (
    "UPDATE deliveries SET read_at = ?, delivered_at = coalesce(delivered_at, ?) "
    "WHERE message_id = ? AND recipient = ? AND read_at IS NULL"
)


def _update_delivery(
    conn: Connection, update: str, params: tuple[float | bytes | str, ...]
) -> bool:
    """Run ``_DELIVERED`` or ``_READ``; True if it changed the delivery row."""
    with write_transaction(conn):
        return conn.execute(update, params).rowcount == 1


def _deliveries(conn: Connection, message_id: bytes) -> list[Delivery]:
    rows = conn.execute(
        "SELECT recipient, delivered_at, read_at FROM deliveries WHERE message_id = ? "
        "ORDER BY recipient",
        (message_id,),
    )
    return [Delivery(r[0], r[1], r[2]) for r in rows]


def _prune_messages(conn: Connection, cutoff: float, include_channel: bool) -> int:
    with write_transaction(conn):
        cur = conn.execute(
            "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE sent_at < ? "
            "AND (to_user IS NOT NULL OR ?) LIMIT ?)",
            (cutoff, include_channel, PRUNE_CHUNK),
        )
        return cur.rowcount
