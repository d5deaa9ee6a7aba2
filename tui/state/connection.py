"""The connection part of the console: logged in or not, the media path, the last error."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tui.state.console_events import Note
from tui.state.model import StateModel
from tui.state.rows import Changed


class ConnectionMixin(StateModel):
    """Handlers for the connection and the status line's error."""

    def _on_connected(self, event: events.Connected, now: float) -> Changed:
        self.connection = "connected"
        self.last_error = ""
        text = "reconnected" if event.reconnect else "connected"
        return Changed.STATUS | self.note("connection", f"{text} as {event.user_id}", now)

    def _on_disconnected(self, event: events.Disconnected, now: float) -> Changed:
        self.connection = "disconnected"
        for row in self.channels.values():
            # The server re-announces talkers when the console re-affiliates.
            row.talker, row.verified, row.talk_started = None, False, None
            if row.my_floor in ("requested", "granted", "queued"):
                row.my_floor = "idle"
        return (
            Changed.STATUS
            | Changed.CHANNELS
            | self.note("connection", f"disconnected: {event.reason}", now)
        )

    def _on_refused(self, event: events.LoginRefused, now: float) -> Changed:
        self.connection = "refused"
        self.last_error = f"login refused ({event.code}): {event.text}"
        return Changed.STATUS | self.note("error", self.last_error, now)

    def _on_media_path(self, event: events.MediaPath, now: float) -> Changed:
        self.media_path = event.path
        return Changed.STATUS | self.note("connection", f"media over {event.path}", now)

    def _on_goodbye(self, event: control.Goodbye, now: float) -> Changed:
        return self.note("connection", f"server said goodbye: {event.reason}", now)

    def _on_error(self, event: control.Error, now: float) -> Changed:
        self.last_error = f"{event.code}: {event.text}" if event.text else event.code
        return Changed.STATUS | self.note("error", self.last_error, now)

    def _on_note(self, event: Note, now: float) -> Changed:
        changed = self.note(event.kind, event.text, now)
        if event.kind == "error":
            self.last_error = event.text
            changed |= Changed.STATUS
        return changed
