"""Channels (talk groups), their signed rosters and members, and the members' key envelopes.

Rosters and envelopes are opaque bytes here (signed and HPKE-wrapped end to end).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ptt_server.store.checks import (
    check_bytes,
    check_channel_id,
    check_ids,
    check_int,
    check_newer,
    check_text,
)
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.errors import ConflictError, NotFoundError, StoreError
from ptt_server.store.records import Channel, KeyEnvelope, Roster


class ChannelTables(StoreConnection):
    """``Store`` methods over ``channels``, ``rosters``, ``channel_members``, ``key_envelopes``."""

    # --- channels and rosters --------------------------------------------------------------

    async def create_channel(self, name: str, now: float) -> int:
        """Create a channel and return its new u32 id (ids are never reused).

        Raises ``ConflictError`` if the name is taken.
        """
        check_text("channel name", name)
        return await self._call("create channel", _create_channel, name, now)

    async def get_channel(self, channel_id: int) -> Channel | None:
        """The channel with this id, or None."""
        return await self._call("read channel", _get_channel, "channel_id", channel_id)

    async def channel_by_name(self, name: str) -> Channel | None:
        """The channel with this name, or None."""
        return await self._call("read channel", _get_channel, "name", name)

    async def list_channels(self) -> list[Channel]:
        """All channels not deleted, by id."""
        return await self._call("list channels", _list_channels)

    async def delete_channel(self, channel_id: int, now: float) -> None:
        """Delete a channel: its roster, members and key envelopes go at once, its name is
        free again, its recordings stay until their retention ends. Raises ``NotFoundError``
        for an unknown or deleted channel, ``ConflictError`` while it is in a patch or an
        emergency raised on it is active."""
        check_channel_id(channel_id)
        await self._call("delete channel", _delete_channel, channel_id, now)

    async def put_roster(
        self, channel_id: int, version: int, signed: bytes, members: Iterable[str]
    ) -> None:
        """Replace a channel's signed roster and member set with a newer version.

        Key envelopes of users no longer on the roster are deleted, so a removed member is
        not handed the channel's key again. Raises ``NotFoundError`` for an unknown channel
        and ``StaleVersionError`` unless ``version`` is higher than the stored roster's.
        """
        check_channel_id(channel_id)
        check_int("roster version", version)
        signed = check_bytes("roster", signed)
        member_ids = check_ids("member id", members)
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
        check_channel_id(channel_id)
        check_int("epoch", epoch)
        rows = [
            (channel_id, check_text("recipient", r), epoch, check_bytes("envelope", b), now)
            for r, b in envelopes.items()
        ]
        return await self._call("store key envelopes", _put_envelopes, channel_id, rows)

    async def envelopes_for(self, user_id: str) -> list[KeyEnvelope]:
        """The user's latest envelope on every channel, by channel id."""
        return await self._call("read key envelopes", _envelopes_for, user_id)


# --- SQL (store thread; each takes the connection first) ------------------------------------


def require_channel(conn: Connection, channel_id: int) -> None:
    """Raise ``NotFoundError`` unless the channel exists (also for bursts and emergencies)."""
    if (
        conn.execute(
            "SELECT 1 FROM channels WHERE channel_id = ? AND deleted_at IS NULL", (channel_id,)
        ).fetchone()
        is None
    ):
        raise NotFoundError(f"channel {channel_id} does not exist: create it first")


def _create_channel(conn: Connection, name: str, now: float) -> int:
    with write_transaction(conn):
        taken = conn.execute("SELECT channel_id FROM channels WHERE name = ?", (name,)).fetchone()
        if taken is not None:
            raise ConflictError(
                f"channel name {name!r} is taken by channel {taken[0]}: choose another"
            )
        try:
            row = conn.execute(
                "INSERT INTO channels (name, created_at) VALUES (?, ?) RETURNING channel_id",
                (name, now),
            ).fetchone()
        except Exception as exc:
            if conn.is_id_exhausted(exc):
                raise StoreError("no channel ids left: all 2^32-1 have been used") from exc
            raise
        channel_id: int = row[0]
        return channel_id


def _get_channel(conn: Connection, column: str, value: object) -> Channel | None:
    row = conn.execute(
        f"SELECT channel_id, name, created_at FROM channels"
        f" WHERE {column} = ? AND deleted_at IS NULL",
        (value,),
    ).fetchone()
    return None if row is None else Channel(row[0], row[1], row[2])


def _list_channels(conn: Connection) -> list[Channel]:
    rows = conn.execute(
        "SELECT channel_id, name, created_at FROM channels WHERE deleted_at IS NULL"
        " ORDER BY channel_id"
    )
    return [Channel(r[0], r[1], r[2]) for r in rows]


def _delete_channel(conn: Connection, channel_id: int, now: float) -> None:
    with write_transaction(conn):
        row = conn.execute(
            "SELECT name FROM channels WHERE channel_id = ? AND deleted_at IS NULL", (channel_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"channel {channel_id} does not exist (or is deleted already)")
        if conn.execute(
            "SELECT 1 FROM patch_links WHERE channel_id = ? OR patch_id = ?",
            (channel_id, channel_id),
        ).fetchone():
            raise ConflictError(f"channel {row[0]!r} is in a patch: end the patch first")
        if conn.execute(
            "SELECT 1 FROM emergencies WHERE channel_id = ? AND cancelled_at IS NULL",
            (channel_id,),
        ).fetchone():
            # An emergency is never dropped with its channel (it would vanish from consoles).
            raise ConflictError(
                f"an emergency is active on channel {row[0]!r}: it must be cancelled first"
            )
        # The name carries the id, so it cannot collide, and says what it was in an audit.
        conn.execute(
            "UPDATE channels SET deleted_at = ?, name = ? WHERE channel_id = ?",
            (now, f"{row[0]} (deleted, #{channel_id})", channel_id),
        )
        for table in ("rosters", "channel_members", "key_envelopes"):
            conn.execute(f"DELETE FROM {table} WHERE channel_id = ?", (channel_id,))


def _put_roster(
    conn: Connection,
    channel_id: int,
    version: int,
    signed: bytes,
    members: tuple[str, ...],
) -> None:
    with write_transaction(conn):
        require_channel(conn, channel_id)
        row = conn.execute(
            "SELECT version FROM rosters WHERE channel_id = ?", (channel_id,)
        ).fetchone()
        check_newer(
            version,
            row,
            f"roster version {version} for channel {channel_id}",
            "sign the change with a higher version",
        )
        conn.execute(
            "INSERT INTO rosters (channel_id, version, signed) VALUES (?, ?, ?) "
            "ON CONFLICT (channel_id) DO UPDATE SET version = excluded.version, "
            "signed = excluded.signed",
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


def _get_roster(conn: Connection, channel_id: int) -> Roster | None:
    row = conn.execute(
        "SELECT version, signed FROM rosters WHERE channel_id = ?", (channel_id,)
    ).fetchone()
    if row is None:
        return None
    members = conn.execute(
        "SELECT user_id FROM channel_members WHERE channel_id = ?", (channel_id,)
    )
    return Roster(channel_id, row[0], row[1], frozenset(m[0] for m in members))


def _channels_of(conn: Connection, user_id: str) -> list[int]:
    rows = conn.execute(
        "SELECT channel_id FROM channel_members WHERE user_id = ? ORDER BY channel_id", (user_id,)
    )
    return [r[0] for r in rows]


def _put_envelopes(
    conn: Connection, channel_id: int, rows: list[tuple[int, str, int, bytes, float]]
) -> int:
    with write_transaction(conn):
        require_channel(conn, channel_id)
        # The WHERE on the upsert keeps a newer epoch's envelope if an older one arrives late;
        # an upsert its WHERE skips changes no row, so the row count is what was stored.
        cur = conn.executemany(
            "INSERT INTO key_envelopes (channel_id, recipient, epoch, envelope, stored_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, recipient) DO UPDATE SET "
            "epoch = excluded.epoch, envelope = excluded.envelope, stored_at = excluded.stored_at "
            "WHERE excluded.epoch >= key_envelopes.epoch",
            rows,
        )
        return cur.rowcount


def _envelopes_for(conn: Connection, user_id: str) -> list[KeyEnvelope]:
    rows = conn.execute(
        "SELECT channel_id, recipient, epoch, envelope, stored_at FROM key_envelopes "
        "WHERE recipient = ? ORDER BY channel_id",
        (user_id,),
    )
    return [KeyEnvelope(r[0], r[1], r[2], r[3], r[4]) for r in rows]
