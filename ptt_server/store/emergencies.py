"""Emergency alerts: one active alert per user, acknowledged and cancelled by id."""

from __future__ import annotations

from typing import Any

from ptt_server.store.channels import require_channel
from ptt_server.store.checks import check_bytes, check_channel_id, check_optional_bytes, check_text
from ptt_server.store.connection import Connection, StoreConnection, write_transaction
from ptt_server.store.errors import NotFoundError, StoreError
from ptt_server.store.records import Emergency, EmergencyRaise

MAX_ALERT_ID_LEN = 64
ALERT_KINDS = ("emergency", "imminent_peril")


class EmergencyTables(StoreConnection):
    """``Store`` methods over ``emergencies``."""

    async def raise_emergency(
        self,
        alert_id: bytes,
        user_id: str,
        channel_id: int | None,
        sealed_location: bytes | None,
        now: float,
        kind: str = "emergency",
    ) -> EmergencyRaise:
        """Record a press of the emergency (or imminent-peril) button: one active alert per user.

        The user's active alert, if any, takes the press (its id, channel and ack stay; the
        location, unless ``sealed_location`` is None, and the time are the new ones), so a radio
        that sends alerts with fresh ids as fast as it can still makes one emergency. Otherwise
        a new alert ``alert_id`` is created on ``channel_id``. A press naming a cancelled or
        another user's alert changes nothing (see :class:`EmergencyRaise`).

        ``kind`` is ``emergency`` or ``imminent_peril``; an emergency press makes the active
        alert an emergency, an imminent-peril press never makes an emergency less.

        Raises ``NotFoundError`` if a new alert's ``channel_id`` does not exist.
        """
        alert_id = check_bytes("alert id", alert_id, max_len=MAX_ALERT_ID_LEN)
        check_text("user id", user_id)
        if channel_id is not None:
            check_channel_id(channel_id)
        location = check_optional_bytes("sealed location", sealed_location)
        if kind not in ALERT_KINDS:
            raise StoreError(f"alert kind {kind!r} is not one of {', '.join(ALERT_KINDS)}")
        row = (alert_id, user_id, channel_id, location, now, kind)
        return await self._call("store emergency", _raise_emergency, row)

    async def ack_emergency(self, alert_id: bytes, by: str, now: float) -> bool:
        """Acknowledge an alert; False if it was already acknowledged or cancelled.

        Raises ``NotFoundError`` for an unknown alert id.
        """
        check_text("acknowledging user", by)
        return await self._call(
            "acknowledge emergency", _update_alert, _ACK, bytes(alert_id), by, now
        )

    async def cancel_emergency(self, alert_id: bytes, by: str, now: float) -> bool:
        """Cancel an alert; False if it was already cancelled.

        Raises ``NotFoundError`` for an unknown alert id.
        """
        check_text("cancelling user", by)
        return await self._call(
            "cancel emergency", _update_alert, _CANCEL, bytes(alert_id), by, now
        )

    async def get_emergency(self, alert_id: bytes) -> Emergency | None:
        """The alert with this id, or None."""
        return await self._call("read emergency", _get_emergency, bytes(alert_id))

    async def active_emergencies(self) -> list[Emergency]:
        """Alerts not cancelled: unacknowledged ones first, then each group oldest first."""
        return await self._call("read emergencies", _active_emergencies)


# --- SQL (store thread; each takes the connection first) ------------------------------------


_EMERGENCY_COLUMNS = (
    "alert_id, user_id, channel_id, sealed_location, raised_at, "
    "acked_by, acked_at, cancelled_by, cancelled_at, updated_at, presses, kind"
)


def _emergency(r: Any) -> Emergency:
    return Emergency(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11])


def _raise_emergency(
    conn: Connection, row: tuple[bytes, str, int | None, bytes | None, float, str]
) -> EmergencyRaise:
    alert_id, user_id, channel_id, location, now, kind = row
    with write_transaction(conn):
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
                "updated_at = ?, presses = presses + 1, "
                "kind = CASE WHEN ? = 'emergency' THEN 'emergency' ELSE kind END "
                "WHERE alert_id = ?",
                (location, now, kind, active[0]),
            )
            updated = _get_emergency(conn, active[0])
            assert updated is not None
            return EmergencyRaise("updated", updated)
        if channel_id is not None:
            require_channel(conn, channel_id)
        conn.execute(
            "INSERT INTO emergencies (alert_id, user_id, channel_id, sealed_location, raised_at,"
            " updated_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alert_id, user_id, channel_id, location, now, now, kind),
        )
        created = _get_emergency(conn, alert_id)
        assert created is not None
        return EmergencyRaise("created", created)


def _require_alert(conn: Connection, alert_id: bytes) -> None:
    if conn.execute("SELECT 1 FROM emergencies WHERE alert_id = ?", (alert_id,)).fetchone() is None:
        raise NotFoundError(f"emergency alert {alert_id.hex()} does not exist")


_ACK = (
    "UPDATE emergencies SET acked_by = ?, acked_at = ? "
    "WHERE alert_id = ? AND acked_at IS NULL AND cancelled_at IS NULL"
)
_CANCEL = (
    "UPDATE emergencies SET cancelled_by = ?, cancelled_at = ? "
    "WHERE alert_id = ? AND cancelled_at IS NULL"
)


def _update_alert(conn: Connection, update: str, alert_id: bytes, by: str, now: float) -> bool:
    """Run ``_ACK`` or ``_CANCEL`` on an existing alert; True if it changed the alert."""
    with write_transaction(conn):
        _require_alert(conn, alert_id)
        return conn.execute(update, (by, now, alert_id)).rowcount == 1


def _get_emergency(conn: Connection, alert_id: bytes) -> Emergency | None:
    row = conn.execute(
        f"SELECT {_EMERGENCY_COLUMNS} FROM emergencies WHERE alert_id = ?", (alert_id,)
    ).fetchone()
    return None if row is None else _emergency(row)


def _active_emergencies(conn: Connection) -> list[Emergency]:
    rows = conn.execute(
        f"SELECT {_EMERGENCY_COLUMNS} FROM emergencies WHERE cancelled_at IS NULL "
        "ORDER BY acked_at IS NOT NULL, raised_at, rowid"
    )
    return [_emergency(r) for r in rows]
