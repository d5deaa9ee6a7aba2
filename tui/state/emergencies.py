"""The emergencies part of the console: alerts until cancelled, and the one the keys act on."""

from __future__ import annotations

from ptt_protocol import control
from tui.state.model import StateModel
from tui.state.rows import Changed, Emergency, PresenceRow


class EmergenciesMixin(StateModel):
    """Active alerts, the alert selection, and alert, acknowledge and cancel handlers."""

    def active_emergencies(self) -> list[Emergency]:
        """Active alerts: unacknowledged first, newest first (an alert left over from an
        earlier shift or demo run sorts below the one that just came in)."""
        return sorted(
            (e for e in self.emergencies.values() if e.active),
            key=lambda e: (e.acked_by is not None, -e.raised_at),
        )

    def unacknowledged(self) -> list[Emergency]:
        return [e for e in self.active_emergencies() if e.acked_by is None]

    def selected_emergency(self) -> Emergency | None:
        """The alert the acknowledge/cancel keys act on."""
        active = self.active_emergencies()
        if not active:
            return None
        for alert in active:
            if alert.alert_id == self.selected_alert:
                return alert
        return active[0]

    def select_next_alert(self) -> Emergency | None:
        """Move the alert selection to the next active alert (wrapping)."""
        active = self.active_emergencies()
        if not active:
            self.selected_alert = None
            return None
        current = self.selected_emergency()
        index = active.index(current) if current in active else -1
        chosen = active[(index + 1) % len(active)]
        self.selected_alert = chosen.alert_id
        return chosen

    def _on_alert(self, event: control.EmergencyAlert, now: float) -> Changed:
        if event.alert_id in self._cancelled:
            return Changed.NONE
        known = self.emergencies.get(event.alert_id)
        if known is not None:
            if known.kind == event.kind:
                return Changed.NONE  # re-sent after a reconnect
            known.kind = event.kind  # an imminent peril became an emergency
            return (
                Changed.EMERGENCIES
                | Changed.CHANNELS
                | Changed.ALARM
                | self.note("emergency", f"{known.label} {self.name_of(event.user_id)}", now)
            )
        alert = Emergency(
            event.alert_id,
            event.user_id,
            event.channel_id,
            event.raised_at or now,
            kind=event.kind,
        )
        self.emergencies[event.alert_id] = alert
        selected = self.emergencies.get(self.selected_alert or b"")
        if (
            selected is None
            or selected.acked_by is not None
            or alert.raised_at >= selected.raised_at
        ):
            # The acknowledge key acts on the alert that just came in, not on an older one.
            self.selected_alert = event.alert_id
        row = self.presence.get(event.user_id)
        if row is None:
            row = self.presence[event.user_id] = PresenceRow(event.user_id, online=True)
        row.status = control.STATUS_EMERGENCY
        channel = self.channels.get(event.channel_id)
        if channel is not None:
            channel.last_activity = now
        where = f" on {self.channel_name(event.channel_id)}" if event.channel_id else ""
        where += " (yours: I cancels it)" if event.user_id == self.me else ""
        return (
            Changed.EMERGENCIES
            | Changed.CHANNELS
            | Changed.PRESENCE
            | Changed.ALARM
            | self.note(
                "emergency",
                f"{alert.label} {self.name_of(event.user_id)} ({event.user_id}){where}",
                now,
            )
        )

    def _on_ack(self, event: control.EmergencyAck, now: float) -> Changed:
        alert = self.emergencies.get(event.alert_id)
        if alert is None or alert.acked_by is not None:
            return Changed.NONE
        alert.acked_by = event.by_user
        return (
            Changed.EMERGENCIES
            | Changed.CHANNELS
            | self.note(
                "emergency",
                f"{self.name_of(alert.user_id)}'s emergency acknowledged by"
                f" {self.name_of(event.by_user)}",
                now,
            )
        )

    def _on_cancel(self, event: control.EmergencyCancel, now: float) -> Changed:
        alert = self.emergencies.pop(event.alert_id, None)
        self._cancelled.append(event.alert_id)
        if alert is None:
            return Changed.NONE
        alert.cancelled_by = event.by_user
        if self.selected_alert == event.alert_id:
            remaining = self.active_emergencies()
            self.selected_alert = remaining[0].alert_id if remaining else None
        row = self.presence.get(alert.user_id)
        if (
            row is not None
            and row.status == control.STATUS_EMERGENCY
            and self.user_emergency(alert.user_id) is None
        ):
            row.status = control.STATUS_AVAILABLE if row.online else control.STATUS_OFFLINE
        whose = "your" if alert.user_id == self.me else f"{self.name_of(alert.user_id)}'s"
        return (
            Changed.EMERGENCIES
            | Changed.CHANNELS
            | Changed.PRESENCE
            | self.note(
                "emergency",
                f"{whose} {alert.label.lower()} cancelled by {self.name_of(event.by_user)}",
                now,
            )
        )
