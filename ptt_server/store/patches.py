"""Patches: which channels are linked through which patch channel, and the signed order.

A patch survives a restart of the server, so radios that log in again are told of it
(``ptt_server.handlers.initial``) and go on hearing the linked channels. The order is
opaque here; the handler checks its signature before it is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from ptt_server.store.channels import require_channel
from ptt_server.store.checks import check_bytes, check_channel_id, check_text
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.errors import ConflictError
from ptt_server.store.records import PatchLinks


class PatchTables(StoreConnection):
    """``Store`` methods over ``patches`` and ``patch_links``."""

    async def put_patch(
        self, patch_id: int, linked: Sequence[int], signed_order: bytes, by: str, now: float
    ) -> None:
        """Link ``linked`` through channel ``patch_id``, or renew that patch's order.

        Raises ``NotFoundError`` for an unknown channel and ``ConflictError`` if one of them
        is in another patch, or ``patch_id`` is a patch of other channels.
        """
        check_channel_id(patch_id)
        for channel_id in linked:
            check_channel_id(channel_id)
        signed_order = check_bytes("patch order", signed_order)
        check_text("patch creator", by)
        row = (patch_id, tuple(sorted(set(linked))), signed_order, by, now)
        await self._call("store patch", _put_patch, *row)

    async def end_patch(self, patch_id: int) -> tuple[int, ...]:
        """Unlink the channels of patch ``patch_id``; returns them (empty if there was none)."""
        check_channel_id(patch_id)
        return await self._call("end patch", _end_patch, patch_id)

    async def list_patches(self) -> list[PatchLinks]:
        """Every patch, by its channel, each with its linked channels ascending."""
        return await self._call("list patches", _list_patches)


def _linked(conn: Connection, patch_id: int) -> tuple[int, ...]:
    rows = conn.execute(
        "SELECT channel_id FROM patch_links WHERE patch_id = ? ORDER BY channel_id", (patch_id,)
    )
    return tuple(r[0] for r in rows)


def _put_patch(
    conn: Connection,
    patch_id: int,
    linked: tuple[int, ...],
    signed_order: bytes,
    by: str,
    now: float,
) -> None:
    with write_transaction(conn):
        for channel_id in (patch_id, *linked):
            require_channel(conn, channel_id)
        if conn.execute("SELECT 1 FROM patches WHERE patch_id = ?", (patch_id,)).fetchone():
            if _linked(conn, patch_id) != linked:
                raise ConflictError(
                    f"channel {patch_id} is a patch of other channels: end it first"
                )
            conn.execute(
                "UPDATE patches SET signed_order = ? WHERE patch_id = ?", (signed_order, patch_id)
            )
            return
        marks = ",".join("?" * (len(linked) + 1))
        busy = conn.execute(
            f"SELECT channel_id, patch_id FROM patch_links WHERE channel_id IN ({marks})"
            f" OR patch_id IN ({marks}) LIMIT 1",
            (patch_id, *linked, patch_id, *linked),
        ).fetchone()
        if busy is not None:
            raise ConflictError(
                f"channel {busy[0]} is in patch {busy[1]} already: end that patch first"
            )
        conn.execute(
            "INSERT INTO patches (patch_id, signed_order, created_by, created_at)"
            " VALUES (?, ?, ?, ?)",
            (patch_id, signed_order, by, now),
        )
        conn.executemany(
            "INSERT INTO patch_links (channel_id, patch_id) VALUES (?, ?)",
            [(channel_id, patch_id) for channel_id in linked],
        )


def _end_patch(conn: Connection, patch_id: int) -> tuple[int, ...]:
    with write_transaction(conn):
        linked = _linked(conn, patch_id)
        conn.execute("DELETE FROM patch_links WHERE patch_id = ?", (patch_id,))
        conn.execute("DELETE FROM patches WHERE patch_id = ?", (patch_id,))
        return linked


def _list_patches(conn: Connection) -> list[PatchLinks]:
    rows = conn.execute(
        "SELECT patch_id, created_by, signed_order FROM patches ORDER BY patch_id"
    ).fetchall()
    return [PatchLinks(p, _linked(conn, p), by, order) for p, by, order in rows]
