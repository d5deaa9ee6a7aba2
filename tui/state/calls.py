"""The private-call part of the console (TS 23.379): the call now (ringing, connected, end to
end direct or through TURN, how long), and the call log the relay keeps.

The console is in at most one call, as a radio is. Every step of it goes into the event log;
an incoming call that waits for the dispatcher rings the bell (:attr:`Changed.ALARM`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ptt_client import events
from ptt_protocol import control
from tui.state.console_events import CallPlaced
from tui.state.model import StateModel
from tui.state.rows import Changed

CALL_LOG_LIMIT: Final = 200
"""Call log rows kept (as many as the relay sends at most)."""

MODE_NAMES: Final = {
    control.CALL_FULL_DUPLEX: "full duplex",
    control.CALL_HALF_DUPLEX: "half duplex",
}


@dataclass
class CallRow:
    """The console's private call."""

    call_id: bytes
    peer: str
    outgoing: bool
    emergency: bool = False
    state: str = "dialing"
    """dialing, ringing (at the peer's when outgoing, here when not), connecting, connected."""
    mode: str = control.CALL_FULL_DUPLEX
    relayed: bool = False
    started_at: float = 0.0
    connected_at: float | None = None
    talker: str = ""
    """Half duplex: who has the call's floor ("" nobody)."""

    @property
    def ringing_here(self) -> bool:
        """An incoming call waits for the dispatcher to answer or refuse it."""
        return self.state == "ringing" and not self.outgoing


def call_duration(seconds: float) -> str:
    """``M:SS``."""
    minutes, rest = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{rest:02d}"


class CallsMixin(StateModel):
    """The current call, the call log, and the handlers of the call events."""

    call: CallRow | None = None
    call_log: tuple[control.CallRecord, ...] = ()

    def call_peer(self, call: CallRow) -> str:
        name = self.name_of(call.peer)
        return f"{name} ({call.peer})" if name != call.peer else call.peer

    def _on_call_placed(self, event: CallPlaced, now: float) -> Changed:
        self.call = CallRow(event.call_id, event.peer, True, event.emergency, started_at=now)
        what = "EMERGENCY call to" if event.emergency else "calling"
        return Changed.STATUS | self.note("call", f"{what} {self.call_peer(self.call)}", now)

    def _on_call_alerting(self, event: events.CallAlerting, now: float) -> Changed:
        self._learn_name(event.peer, event.display_name)
        call = self.call
        if event.outgoing:
            if call is None or call.call_id != event.call_id:
                return Changed.NONE
            call.state = "ringing"
            return Changed.STATUS | self.note("call", f"ringing at {self.call_peer(call)}", now)
        call = self.call = CallRow(
            event.call_id, event.peer, False, event.emergency, "ringing", started_at=now
        )
        head = "EMERGENCY CALL" if event.emergency else "INCOMING CALL"
        return (
            Changed.STATUS
            | Changed.ALARM
            | self.note("call", f"{head} from {self.call_peer(call)}", now)
        )

    def _on_call_connected(self, event: events.CallConnected, now: float) -> Changed:
        call = self.call
        if call is None or call.call_id != event.call_id:
            call = self.call = CallRow(event.call_id, event.peer, event.outgoing, started_at=now)
        call.state, call.mode, call.relayed = "connected", event.mode, event.relayed
        call.emergency = event.emergency
        call.connected_at = now
        path = "through TURN" if event.relayed else "direct"
        return Changed.STATUS | self.note(
            "call",
            f"call with {self.call_peer(call)} connected: end to end, {path}"
            f" ({MODE_NAMES.get(event.mode, event.mode)})",
            now,
        )

    def _on_call_ended(self, event: events.CallEnded, now: float) -> Changed:
        if self.call is not None and self.call.call_id == event.call_id:
            self.call = None
        who = self.name_of(event.peer)
        who = f"{who} ({event.peer})" if who != event.peer else who
        said = f": {event.text}" if event.text else ""
        lasted = f", after {call_duration(event.duration_s)}" if event.duration_s > 0 else ""
        return Changed.STATUS | self.note(
            "call", f"call with {who} ended ({event.reason}){said}{lasted}", now
        )

    def _on_call_talker(self, event: control.CallTalker, now: float) -> Changed:
        call = self.call
        if call is None or call.call_id != event.call_id:
            return Changed.NONE
        call.talker = event.user_id
        return Changed.STATUS

    def _on_call_log(self, event: control.CallLog, now: float) -> Changed:
        self.call_log = event.calls[:CALL_LOG_LIMIT]
        return Changed.NONE  # the call log screen shows it (tui.screens.call_log)
