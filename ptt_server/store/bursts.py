"""The talk-burst log, each burst's recorded E2E-sealed frames, and pruning old recordings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ptt_server.store.channels import require_channel
from ptt_server.store.checks import check_bytes, check_channel_id, check_int, check_text
from ptt_server.store.connection import (
    PRUNE_CHUNK,
    Connection,
    StoreConnection,
    write_transaction,
)
from ptt_server.store.errors import NotFoundError
from ptt_server.store.records import Burst, BurstFrame


class BurstTables(StoreConnection):
    """``Store`` methods over ``bursts`` and ``burst_frames``."""

    async def start_burst(
        self,
        channel_id: int,
        burst_id: int,
        talker: str,
        priority: int,
        started_at: float,
        *,
        broadcast: bool = False,
    ) -> int:
        """Log the start of a talk burst (``broadcast``: of a broadcast group call); returns
        its ``burst_key``.

        Raises ``NotFoundError`` for an unknown channel.
        """
        check_channel_id(channel_id)
        check_int("burst id", burst_id)
        check_text("talker", talker)
        check_int("priority", priority)
        row = (channel_id, burst_id, talker, priority, started_at, int(bool(broadcast)))
        return await self._call("log burst start", _start_burst, row)

    async def end_burst(self, burst_key: int, duration: float, outcome: str) -> None:
        """Record how long a burst lasted and how it ended (e.g. "released", "revoked").

        Raises ``NotFoundError`` for an unknown burst.
        """
        check_int("burst key", burst_key)
        await self._call("log burst end", _end_burst, burst_key, duration, outcome)

    async def record_frames(self, burst_key: int, frames: Iterable[tuple[int, int, bytes]]) -> int:
        """Append a batch of sealed frames to a burst's recording in ONE transaction.

        Call it with the server's buffer (about half a second of frames), never per frame.
        A sequence number already recorded is skipped (duplicate datagram). Returns how
        many frames were stored. Raises ``NotFoundError`` for an unknown burst.
        """
        check_int("burst key", burst_key)
        # Checked on the store thread: a large batch must not hold up the event loop.
        return await self._call("record frames", _record_frames, burst_key, list(frames))

    async def recent_bursts(self, channel_id: int, limit: int = 20) -> list[Burst]:
        """The channel's last ``limit`` bursts, newest first."""
        check_int("limit", limit, 1)
        return await self._call("read bursts", _recent_bursts, channel_id, limit)

    async def last_heard(self, user_ids: Iterable[str]) -> dict[str, float]:
        """When each of ``user_ids`` was last heard: the end of their newest burst (its start
        while it is still open). Users never heard are left out."""
        wanted = tuple(dict.fromkeys(user_ids))
        return await self._call("read last heard", _last_heard, wanted)

    async def get_burst(self, channel_id: int, burst_key: int) -> Burst | None:
        """The burst ``burst_key`` if it was recorded on ``channel_id``, else None."""
        check_int("burst key", burst_key)
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
            if bursts < PRUNE_CHUNK:
                return total


# --- SQL (store thread; each takes the connection first) ------------------------------------


def _start_burst(conn: Connection, row: tuple[int, int, str, int, float, int]) -> int:
    with write_transaction(conn):
        require_channel(conn, row[0])
        inserted = conn.execute(
            "INSERT INTO bursts (channel_id, burst_id, talker, priority, started_at, broadcast) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING burst_key",
            row,
        ).fetchone()
        key: int = inserted[0]
        return key


def _require_burst(conn: Connection, burst_key: int) -> None:
    if conn.execute("SELECT 1 FROM bursts WHERE burst_key = ?", (burst_key,)).fetchone() is None:
        raise NotFoundError(f"talk burst {burst_key} does not exist")


def _end_burst(conn: Connection, burst_key: int, duration: float, outcome: str) -> None:
    with write_transaction(conn):
        _require_burst(conn, burst_key)
        conn.execute(
            "UPDATE bursts SET duration = ?, outcome = ? WHERE burst_key = ?",
            (duration, outcome, burst_key),
        )


def _record_frames(conn: Connection, burst_key: int, frames: list[tuple[int, int, bytes]]) -> int:
    rows = [
        (burst_key, check_int("seq", seq), check_int("flags", flags), check_bytes("frame", f))
        for seq, flags, f in frames
    ]
    with write_transaction(conn):
        row = conn.execute(
            "SELECT recorded FROM bursts WHERE burst_key = ?", (burst_key,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"talk burst {burst_key} does not exist")
        if not row[0]:
            conn.execute("UPDATE bursts SET recorded = 1 WHERE burst_key = ?", (burst_key,))
        cur = conn.executemany(
            "INSERT INTO burst_frames (burst_key, seq, flags, frame) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (burst_key, seq) DO NOTHING",
            rows,
        )
        return cur.rowcount


_CHANNEL_BURSTS = (
    "SELECT b.burst_key, b.channel_id, b.burst_id, b.talker, b.priority, b.started_at, "
    "b.duration, b.outcome, "
    "(SELECT count(*) FROM burst_frames AS f WHERE f.burst_key = b.burst_key), b.broadcast "
    "FROM bursts AS b WHERE b.channel_id = ? "
)
"""The start of a query for a channel's bursts as ``Burst`` rows (the frame count last)."""


def _burst(r: Any) -> Burst:
    return Burst(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]))


def _recent_bursts(conn: Connection, channel_id: int, limit: int) -> list[Burst]:
    rows = conn.execute(
        _CHANNEL_BURSTS + "ORDER BY b.started_at DESC, b.burst_key DESC LIMIT ?",
        (channel_id, limit),
    )
    return [_burst(r) for r in rows]


def _last_heard(conn: Connection, user_ids: tuple[str, ...]) -> dict[str, float]:
    heard: dict[str, float] = {}
    for user_id in user_ids:  # each one seek in bursts_by_talker_time
        row = conn.execute(
            "SELECT started_at + COALESCE(duration, 0) FROM bursts WHERE talker = ? "
            "ORDER BY started_at DESC LIMIT 1",
            (user_id,),
        ).fetchone()
        if row is not None:
            heard[user_id] = float(row[0])
    return heard


def _get_burst(conn: Connection, channel_id: int, burst_key: int) -> Burst | None:
    row = conn.execute(_CHANNEL_BURSTS + "AND b.burst_key = ?", (channel_id, burst_key)).fetchone()
    return None if row is None else _burst(row)


def _burst_frames(conn: Connection, burst_key: int) -> list[BurstFrame]:
    rows = conn.execute(
        "SELECT seq, flags, frame FROM burst_frames WHERE burst_key = ? ORDER BY seq",
        (burst_key,),
    )
    return [BurstFrame(r[0], r[1], r[2]) for r in rows]


def _prune_recordings(conn: Connection, older_than: float) -> tuple[int, int]:
    with write_transaction(conn):
        keys = conn.execute(
            "SELECT burst_key FROM bursts WHERE recorded = 1 AND started_at < ? LIMIT ?",
            (older_than, PRUNE_CHUNK),
        ).fetchall()
        frames = conn.executemany("DELETE FROM burst_frames WHERE burst_key = ?", keys).rowcount
        conn.executemany("UPDATE bursts SET recorded = 0 WHERE burst_key = ?", keys)
        return len(keys), frames
