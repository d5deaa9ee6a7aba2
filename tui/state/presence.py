"""The presence part of the console: who is enrolled and online, their status and location.

The server's snapshot lists every enrolled user (:class:`control.EnrolledUsers`), so an
officer who never logged in has a row ("never seen") and can be texted for later delivery.
"""

from __future__ import annotations

from collections.abc import Iterable

from ptt_protocol import control
from tui.state.console_events import LocationText, NamesVerified
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

    def user_choices(self, among: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(user id, name) of every user the console knows (every enrolled user once the
        presence snapshot is in), or of ``among``; the console itself left out."""
        users = list(self.presence) if among is None else list(dict.fromkeys(among))
        return [(user_id, self.name_of(user_id)) for user_id in users if user_id != self.me]

    def _on_presence(self, event: control.PresenceUpdate, now: float) -> Changed:
        row = self.presence.get(event.user_id)
        self._learn_name(event.user_id, event.display_name)
        if row is None:
            row = self.presence[event.user_id] = PresenceRow(event.user_id)
        # A first presence (a row from the enrolled list has none yet) is no change to log.
        first = not row.online and row.last_seen <= 0
        before = None if first else (row.online, row.status)
        if event.user_id not in self.verified_names:
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

    def _on_enrolled(self, event: control.EnrolledUsers, now: float) -> Changed:
        for user in event.users:
            if user.user_id == self.me:
                continue
            if user.user_id not in self.presence:
                self.presence[user.user_id] = PresenceRow(user.user_id)  # offline, never seen
            if user.last_heard is not None and user.last_heard > self.heard.get(user.user_id, 0):
                self.heard[user.user_id] = user.last_heard
        return Changed.PRESENCE | Changed.CHANNELS

    def _on_names_verified(self, event: NamesVerified, now: float) -> Changed:
        for user_id, name in event.names:
            if not name:
                continue
            self.verified_names.add(user_id)
            self.names[user_id] = name
            row = self.presence.get(user_id)
            if row is not None:
                row.display_name = name
        return Changed.PRESENCE | Changed.CHANNELS | Changed.MESSAGES
