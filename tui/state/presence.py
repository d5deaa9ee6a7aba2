"""The presence part of the console: who is online, their status and last location."""

from __future__ import annotations

from ptt_protocol import control
from tui.state.console_events import LocationText
from tui.state.model import StateModel
from tui.state.rows import Changed, PresenceRow


def format_location(lat: float, lon: float) -> str:
    """``52.37022, 4.89517`` (5 decimals: about a metre)."""
    return f"{lat:.5f}, {lon:.5f}"


class PresenceMixin(StateModel):
    """The presence list, its search, and presence and location handlers."""

    def presence_rows(self, search: str = "") -> list[PresenceRow]:
        """Presence in display order: emergencies first, then online users, then by name.

        ``search`` keeps rows whose user id, name, status or channel contains it
        (case-insensitive).
        """
        needle = search.strip().lower()
        rows = [
            row
            for row in self.presence.values()
            if not needle
            or needle in row.user_id.lower()
            or needle in row.display_name.lower()
            or needle in row.status
            or needle in row.status.replace("_", " ")
            or needle in self.channel_name(row.channel_id).lower()
        ]
        return sorted(
            rows,
            key=lambda row: (
                not (
                    row.status == control.STATUS_EMERGENCY
                    or self.user_emergency(row.user_id) is not None
                ),
                not row.online,
                (row.display_name or row.user_id).lower(),
            ),
        )

    def _on_presence(self, event: control.PresenceUpdate, now: float) -> Changed:
        row = self.presence.get(event.user_id)
        self._learn_name(event.user_id, event.display_name)
        if row is None:
            row = self.presence[event.user_id] = PresenceRow(event.user_id)
            before: tuple[bool, str] | None = None
        else:
            before = (row.online, row.status)
        row.display_name = event.display_name or row.display_name
        row.online = event.online
        row.status = event.status
        row.channel_id = event.channel_id
        row.last_seen = event.last_seen
        # The location stays: the app replaces it when it opens a newer sealed one.
        changed = Changed.PRESENCE | Changed.CHANNELS  # online counts
        if before is not None and before != (row.online, row.status):
            state = row.status if row.online else "offline"
            changed |= self.note("presence", f"{self.name_of(row.user_id)}: {state}", now)
        return changed

    def _on_location(self, event: LocationText, now: float) -> Changed:
        changed = Changed.NONE
        row = self.presence.get(event.user_id)
        if row is not None:
            row.location = event.text
            changed |= Changed.PRESENCE
        if event.alert_id is not None:
            alert = self.emergencies.get(event.alert_id)
            if alert is not None:
                alert.location = event.text
                changed |= Changed.EMERGENCIES
        return changed
