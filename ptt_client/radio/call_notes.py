"""The notes a radio prints for its private calls (TS 23.379): ringing, connected (end to end,
direct or through TURN), ended (the reason, what happened, how long), who has a half-duplex
call's floor, and the status line's call part.

:class:`CallNotes` is pure: call events go in (:meth:`CallNotes.notes`), notes come out. It
remembers the peer's name from the ring, so later notes of the call name them too.
"""

from __future__ import annotations

from ptt_client import events
from ptt_client.calls.manager import Call
from ptt_client.radio.notes import Note, note
from ptt_protocol import control

__all__ = ["CallNotes", "call_status", "dialing", "recorded"]

_MODES = {control.CALL_FULL_DUPLEX: "full duplex", control.CALL_HALF_DUPLEX: "half duplex"}


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def dialing(call: Call) -> Note:
    """This radio places a call."""
    what = "EMERGENCY call" if call.emergency else "calling"
    return note(
        "call_dialing",
        f"{what} {call.peer} ({_MODES.get(call.mode, call.mode)})",
        call_id=call.call_id,
        peer=call.peer,
        mode=call.mode,
        emergency=call.emergency,
    )


def recorded(peer: str, path: object, seconds: float) -> Note:
    """A call's audio went to a WAV file, now complete."""
    return note(
        "call_recorded",
        f"call with {peer} recorded: {seconds:.1f} s in {path}",
        peer=peer,
        path=str(path),
        seconds=round(seconds, 2),
    )


def call_status(call: Call | None, me: str, now: float) -> str:
    """The status line's call part, e.g. ``CALL bob 0:42``; empty without a call."""
    if call is None:
        return ""
    head = "EMERGENCY CALL" if call.emergency else "CALL"
    who = call.display_name or call.peer
    if call.state == "ringing" and not call.outgoing:
        return f"{head} from {who} RINGING: a answers, r refuses"
    if call.state in ("dialing", "ringing"):
        return f"{head} {who} {call.state}"
    if call.state != "connected" or call.connected_at is None:
        return f"{head} {who} connecting"
    line = f"{head} {who} {_duration(now - call.connected_at)}"
    if call.mode == control.CALL_HALF_DUPLEX:
        talker = "you talk" if call.talker == me else (call.talker or "floor free")
        line += f" half duplex: {talker}"
    return line


class CallNotes:
    """Notes for the call events of the radio of user ``me``."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._names: dict[bytes, str] = {}
        """call id -> the peer's display name (from its signed offer)."""

    def _who(self, call_id: bytes, peer: str) -> str:
        name = self._names.get(call_id, "")
        return f"{name} ({peer})" if name else peer

    def notes(self, event: object, active: Call | None = None) -> list[Note]:
        """The notes ``event`` gives; ``active`` is the radio's call now (how it is answered)."""
        if isinstance(event, events.CallAlerting):
            return [self._alerting(event, active)]
        if isinstance(event, events.CallConnected):
            return [self._connected(event)]
        if isinstance(event, events.CallEnded):
            return [self._ended(event)]
        if isinstance(event, control.CallTalker):
            return [self._talker(event)]
        return []

    def _alerting(self, event: events.CallAlerting, active: Call | None) -> Note:
        if event.display_name:
            self._names[event.call_id] = event.display_name
            if len(self._names) > 64:  # calls long over: keep the map small
                self._names = {event.call_id: event.display_name}
        fields: dict[str, object] = {
            "call_id": event.call_id,
            "peer": event.peer,
            "name": event.display_name,
            "outgoing": event.outgoing,
            "emergency": event.emergency,
        }
        if event.outgoing:
            return note("call_ringing", f"ringing at {event.peer}", **fields, answer="")
        ringing = active is not None and active.call_id == event.call_id
        manual = ringing and active is not None and active.state == "ringing"
        head = "EMERGENCY CALL" if event.emergency else "CALL"
        who = self._who(event.call_id, event.peer)
        text = f"{head} from {who}: " + ("a answers, r refuses" if manual else "answering")
        return note("call_ringing", text, **fields, answer="manual" if manual else "automatic")

    def _connected(self, event: events.CallConnected) -> Note:
        path = "through TURN" if event.relayed else "direct"
        return note(
            "call_connected",
            f"call with {self._who(event.call_id, event.peer)} connected:"
            f" end to end, {path} ({_MODES.get(event.mode, event.mode)})",
            call_id=event.call_id,
            peer=event.peer,
            outgoing=event.outgoing,
            mode=event.mode,
            emergency=event.emergency,
            relayed=event.relayed,
            path="turn" if event.relayed else "direct",
        )

    def _ended(self, event: events.CallEnded) -> Note:
        who = self._who(event.call_id, event.peer)
        self._names.pop(event.call_id, None)
        said = f": {event.text}" if event.text else ""
        lasted = f", after {_duration(event.duration_s)}" if event.duration_s > 0 else ""
        return note(
            "call_ended",
            f"call with {who} ended ({event.reason}){said}{lasted}",
            call_id=event.call_id,
            peer=event.peer,
            outgoing=event.outgoing,
            reason=event.reason,
            text=event.text,
            duration_s=round(event.duration_s, 2),
        )

    def _talker(self, event: control.CallTalker) -> Note:
        if event.user_id == self.me:
            text = "you have the call's floor: talk"
        elif event.user_id:
            text = f"{event.user_id} has the call's floor"
        else:
            text = "the call's floor is free"
        return note("call_talker", text, call_id=event.call_id, talker=event.user_id)
