"""Patches: which channels are linked through which patch channel (issue 11).

A patch survives a restart of the server, so radios that log in again are told of it
(``ptt_server.handlers.initial``) and go on hearing the linked channels.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ptt_server.store.channels import require_channel
from ptt_server.store.checks import check_channel_id, check_text
from ptt_server.store.connection import StoreConnection, write_transaction
from ptt_server.store.errors import ConflictError
from ptt_server.store.records import PatchLinks


class PatchTables(StoreConnection):
    """``Store`` methods over ``patch_links``."""

    async def put_patch(
        self, patch_id: int, linked: Sequence[int], created_by: str, now: float
    ) -> None:
        """Link ``linked`` through channel ``patch_id``. Raises ``NotFoundError`` for an unknown
        channel and ``ConflictError`` if one of them is in a patch already."""
        check_channel_id(patch_id)
        for channel_id in linked:
            check_channel_id(channel_id)
        check_text("patch creator", created_by)
        await self._call("store patch", _put_patch, patch_id, tuple(linked), created_by, now)

    async def end_patch(self, patch_id: int) -> tuple[int, ...]:
        """Unlink the channels of patch ``patch_id``; returns them (empty if there was none)."""
        check_channel_id(patch_id)
        return await self._call("end patch", _end_patch, patch_id)

    async def list_patches(self) -> list[PatchLinks]:
        """Every patch, by its channel, each with its linked channels ascending."""
        return await self._call("list patches", _list_patches)


def _put_patch(
    conn: sqlite3.Connection, patch_id: int, linked: tuple[int, ...], by: str, now: float
) -> None:
    with write_transaction(conn):
        for channel_id in (patch_id, *linked):
            require_channel(conn, channel_id)
        busy = conn.execute(
            "SELECT channel_id, patch_id FROM patch_links WHERE channel_id IN"
            f" ({','.join('?' * (len(linked) + 1))}) OR patch_id IN"
            f" ({','.join('?' * (len(linked) + 1))}) LIMIT 1",
            (patch_id, *linked, patch_id, *linked),
        ).fetchone()
        if busy is not None:
            raise ConflictError(
                f"channel {busy[0]} is in patch {busy[1]} already: end that patch first"
            )
        conn.executemany(
            "INSERT INTO patch_links (channel_id, patch_id, created_by, created_at)"
            " VALUES (?, ?, ?, ?)",
            [(channel_id, patch_id, by, now) for channel_id in linked],
        )


def _end_patch(conn: sqlite3.Connection, patch_id: int) -> tuple[int, ...]:
    with write_transaction(conn):
        rows = conn.execute(
            "SELECT channel_id FROM patch_links WHERE patch_id = ? ORDER BY channel_id",
            (patch_id,),
        ).fetchall()
        conn.execute("DELETE FROM patch_links WHERE patch_id = ?", (patch_id,))
        return tuple(r[0] for r in rows)


def _list_patches(conn: sqlite3.Connection) -> list[PatchLinks]:
    patches: dict[int, tuple[list[int], str]] = {}
    for channel_id, patch_id, created_by in conn.execute(
        "SELECT channel_id, patch_id, created_by FROM patch_links ORDER BY patch_id, channel_id"
    ):
        patches.setdefault(patch_id, ([], created_by))[0].append(channel_id)
    return [PatchLinks(p, tuple(linked), by) for p, (linked, by) in patches.items()]
