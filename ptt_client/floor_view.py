"""One channel's floor as this radio sees it: its own floor participant and who else talks.

:class:`ChannelFloor` holds the radio's side of floor control on one channel, the TS 24.380
floor participant of :mod:`ptt_protocol.floor_participant` (PTT key, request, grant,
release), together with what Floor Taken and Floor Idle say about other talkers. Floor
control messages go in (:meth:`ChannelFloor.receive`), the participant's effects come out
(requests and releases to send, a burst to start or end, or ``Ignored`` for a message that
does not fit), and :attr:`ChannelFloor.view` is kept up to date: the :class:`FloorView`
snapshot the radio's status line, the console and the key ring read.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptt_protocol import control
from ptt_protocol.floor_participant import (
    FloorParticipant,
    Ignored,
    ParticipantEffect,
    ParticipantState,
)

__all__ = ["FLOOR_MESSAGES", "ChannelFloor", "FloorMessage", "FloorView"]

FloorMessage = (
    control.FloorGranted
    | control.FloorDeny
    | control.FloorQueuePosition
    | control.FloorRevoke
    | control.FloorTaken
    | control.FloorIdle
)
FLOOR_MESSAGES = (
    control.FloorGranted,
    control.FloorDeny,
    control.FloorQueuePosition,
    control.FloorRevoke,
    control.FloorTaken,
    control.FloorIdle,
)
"""The floor control server's messages to a radio (TS 24.380 clause 8.2)."""


@dataclass
class FloorView:
    """What this client knows about one channel's floor."""

    state: str = "idle"
    """idle, requested, granted, queued, taken, denied, revoked"""
    talker: str | None = None
    talker_name: str = ""
    burst_id: int = 0
    priority: int = 0
    queue_position: int = 0
    cause: str = ""
    broadcast: bool = False
    """The talk (this radio's or the talker's) is a broadcast group call (TS 22.179 6.2.3)."""


class ChannelFloor:
    """The radio's floor participant on one channel, and the other talker it hears."""

    __slots__ = (
        "_answer",
        "_pressed_broadcast",
        "_pressed_priority",
        "_talker",
        "_talker_broadcast",
        "_talker_burst",
        "_talker_name",
        "_talker_priority",
        "me",
        "participant",
        "view",
    )

    def __init__(self, me: str, view: FloorView | None = None) -> None:
        self.me = me
        self.participant = FloorParticipant()
        self.view = view if view is not None else FloorView()
        """Kept up to date after every input (the same object, so holders of it see changes)."""
        self._pressed_priority = 0
        self._pressed_broadcast = False
        self._talker: str | None = None
        self._talker_broadcast = False
        self._talker_name = ""
        self._talker_burst = 0
        self._talker_priority = 0
        self._answer = ""
        """"denied" or "revoked": shown until the floor moves on (a new talker, idle, PTT)."""
        self._refresh()

    def __repr__(self) -> str:
        return f"ChannelFloor({self.participant!r}, view={self.view.state})"

    @property
    def ptt_down(self) -> bool:
        """The PTT key is held (also after the floor was taken away from under it)."""
        return self.participant.ptt_down

    @property
    def talking_burst(self) -> int | None:
        """The burst this radio may send media in, or None."""
        return self.participant.burst_id if self.participant.talking else None

    # --- the PTT key -----------------------------------------------------------------------

    def press(self, priority: int, *, broadcast: bool = False) -> list[ParticipantEffect]:
        """PTT down (``broadcast``: this channel's part of a broadcast group call)."""
        effects = self.participant.ptt_press(priority)
        if not _ignored(effects):
            self._pressed_priority = priority
            self._pressed_broadcast = broadcast
            self._answer = ""
        self._refresh()
        return effects

    def release(self) -> list[ParticipantEffect]:
        effects = self.participant.ptt_release()
        if not _ignored(effects):
            self._answer = ""
        self._refresh()
        return effects

    # --- the floor control server ----------------------------------------------------------

    def receive(self, message: FloorMessage) -> list[ParticipantEffect]:
        """One floor control message for this channel."""
        participant = self.participant
        effects: list[ParticipantEffect]
        if isinstance(message, control.FloorGranted):
            effects = participant.granted(message.burst_id, message.duration_limit)
        elif isinstance(message, control.FloorDeny):
            effects = participant.denied(message.cause)
            if not _ignored(effects):
                self._answer = "denied"
        elif isinstance(message, control.FloorQueuePosition):
            effects = participant.queued(message.position)
        elif isinstance(message, control.FloorRevoke):
            effects = participant.revoked(message.cause)
            if not _ignored(effects):
                self._answer = "revoked"
        elif isinstance(message, control.FloorTaken):
            talker_is_me = message.user_id == self.me
            effects = participant.floor_taken(talker_is_me)
            if not talker_is_me:
                self._talker = message.user_id
                self._talker_name = message.display_name
                self._talker_burst = message.burst_id
                self._talker_priority = message.priority
                self._talker_broadcast = message.broadcast
                self._answer = ""
        else:
            effects = participant.floor_idle()
            self._talker = None
            self._talker_name = ""
            self._answer = ""
        self._refresh()
        return effects

    def disconnected(self) -> list[ParticipantEffect]:
        """The control connection dropped: our floor is gone, and we hear nobody."""
        effects = self.participant.disconnected()
        self._talker = None
        self._talker_name = ""
        self._answer = ""
        self._refresh()
        return effects

    # --- the view --------------------------------------------------------------------------

    def _refresh(self) -> None:
        view, participant = self.view, self.participant
        state = participant.state
        view.cause = participant.cause
        view.queue_position = participant.queue_position
        if state is ParticipantState.HAS_PERMISSION:
            view.state = "granted"
            view.talker, view.talker_name = self.me, ""
            view.burst_id = participant.burst_id or 0
            view.priority = self._pressed_priority
            view.broadcast = self._pressed_broadcast
            return
        view.talker, view.talker_name = self._talker, self._talker_name
        view.broadcast = self._talker_broadcast and self._talker is not None
        view.burst_id = self._talker_burst if self._talker is not None else 0
        view.priority = self._talker_priority if self._talker is not None else 0
        if state is ParticipantState.PENDING_REQUEST:
            view.state = "requested"
        elif state is ParticipantState.QUEUED:
            view.state = "queued"
        elif self._answer:
            view.state = self._answer
        elif self._talker is not None:
            view.state = "taken"
        else:
            view.state = "idle"


def _ignored(effects: list[ParticipantEffect]) -> bool:
    return any(isinstance(effect, Ignored) for effect in effects)
