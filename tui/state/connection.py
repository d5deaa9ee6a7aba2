"""The connection part of the console: logged in or not, the media path, the status notice.

The status line says how the console's last action went (:attr:`StateModel.notice`). An
error stays there until the next action succeeds or :data:`NOTICE_SECONDS` pass, so a
failure from an hour ago does not look like the current state; the event log keeps it.
"""

from __future__ import annotations

from typing import Final

from ptt_client import events
from ptt_protocol import control
from tui.state.console_events import Note
from tui.state.model import StateModel
from tui.state.rows import Changed, Notice

NOTICE_SECONDS: Final = 30.0
"""How long the status line shows a notice (an error or the outcome of an action)."""


class ConnectionMixin(StateModel):
    """Handlers for the connection, and the status line's notice."""

    def status_notice(self, now: float) -> Notice | None:
        """The notice the status line shows at ``now``: None once it is older than
        :data:`NOTICE_SECONDS` (a clock that went back shows it still)."""
        notice = self.notice
        if notice is None or now - notice.at >= NOTICE_SECONDS:
            return None
        return notice

    def _error(self, text: str, now: float) -> Changed:
        self.last_error = text
        self.notice = Notice(text, True, now)
        return Changed.STATUS | self.note("error", text, now)

    def _on_connected(self, event: events.Connected, now: float) -> Changed:
        self.connection = "connected"
        self.last_error = ""
        if self.notice is not None and self.notice.error:
            self.notice = None
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
        return self._error(f"login refused ({event.code}): {event.text}", now)

    def _on_media_path(self, event: events.MediaPath, now: float) -> Changed:
        self.media_path = event.path
        return Changed.STATUS | self.note("connection", f"media over {event.path}", now)

    def _on_goodbye(self, event: control.Goodbye, now: float) -> Changed:
        return self.note("connection", f"server said goodbye: {event.reason}", now)

    def _on_error(self, event: control.Error, now: float) -> Changed:
        return self._error(f"{event.code}: {event.text}" if event.text else event.code, now)

    def _on_note(self, event: Note, now: float) -> Changed:
        """Something the console did: an error, or an action that went through (which
        clears the error before it)."""
        if event.kind == "error":
            return self._error(event.text, now)
        self.last_error = ""
        self.notice = Notice(event.text, False, now)
        return Changed.STATUS | self.note(event.kind, event.text, now)
