"""The floor participant: one radio's side of floor control, in the words of 3GPP TS 24.380.

:class:`FloorParticipant` is the client half of :mod:`ptt_protocol.floor` for one
channel (TS 24.380 clause 6.2.4, "floor participant procedures"), with no I/O: the
push-to-talk key and the floor control server's messages go in, and what to do comes
out as :class:`ParticipantEffect` objects (messages to send, a talk burst to start or
end). ``RadioClient``, ``ptt-radio`` and the console all drive this one machine, so
"what does PTT up mean now" is decided in one place.

The states are the standard's (6.2.4.1):

- 'U: has no permission' - nobody here talks; PTT down asks for the floor.
- 'U: pending Request' - a Floor Request is out, no answer yet.
- 'U: queued' - the server queued the request (Floor Queue Position Info).
- 'U: has permission' - Floor Granted: this radio talks in the granted burst.
- 'U: pending Release' - this radio stopped talking and released; it waits for the
  server's Floor Idle or Floor Taken.

The PTT key is tracked apart from the floor (:attr:`FloorParticipant.ptt_down`): the
officer may still hold it when the floor is taken away (Floor Revoke, a pre-emption by
an emergency), and letting go of it then must not do anything - in particular not ask
for the floor again (issue 10: a pre-empted dispatcher who pressed Space to stop went
back on air after the emergency). PTT up in 'U: pending Request' or 'U: queued'
cancels the request with a Floor Release (6.2.4.3.3, 6.2.4.8.3).

Messages that do not fit the state (a Floor Granted nobody asked for, a Floor Deny
while talking) are ignored and reported as :attr:`ParticipantEffect` ``Ignored`` -
never an exception: whatever the network sends cannot break the radio.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "EndBurst",
    "FloorParticipant",
    "Ignored",
    "ParticipantEffect",
    "ParticipantState",
    "SendFloorRelease",
    "SendFloorRequest",
    "StartBurst",
]


class ParticipantState(Enum):
    """TS 24.380 6.2.4 floor participant states."""

    NO_PERMISSION = "U: has no permission"
    PENDING_REQUEST = "U: pending Request"
    QUEUED = "U: queued"
    HAS_PERMISSION = "U: has permission"
    PENDING_RELEASE = "U: pending Release"


@dataclass(frozen=True, slots=True)
class SendFloorRequest:
    """Send a Floor Request at ``priority``."""

    priority: int


@dataclass(frozen=True, slots=True)
class SendFloorRelease:
    """Send a Floor Release (ends this radio's burst, or cancels its request)."""


@dataclass(frozen=True, slots=True)
class StartBurst:
    """Floor Granted: start sending media in ``burst_id`` (limit in seconds, 0 = none)."""

    burst_id: int
    duration_limit: float


@dataclass(frozen=True, slots=True)
class EndBurst:
    """Stop sending media in ``burst_id`` (sign its tail); ``reason`` says why."""

    burst_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message that does not fit the state; nothing changed."""

    what: str
    state: ParticipantState


ParticipantEffect = SendFloorRequest | SendFloorRelease | StartBurst | EndBurst | Ignored


class FloorParticipant:
    """One radio's floor state on one channel (pure; no clock needed: the server times)."""

    __slots__ = ("burst_id", "cause", "ptt_down", "queue_position", "state")

    def __init__(self) -> None:
        self.state = ParticipantState.NO_PERMISSION
        self.ptt_down = False
        self.burst_id: int | None = None
        """The granted burst while in 'U: has permission'."""
        self.queue_position = 0
        self.cause = ""
        """The last deny or revoke cause (for display)."""

    def __repr__(self) -> str:
        return f"FloorParticipant({self.state.value}, ptt={'down' if self.ptt_down else 'up'})"

    @property
    def talking(self) -> bool:
        return self.state is ParticipantState.HAS_PERMISSION

    # --- the PTT key -----------------------------------------------------------------------

    def ptt_press(self, priority: int) -> list[ParticipantEffect]:
        """PTT pressed: ask for the floor, unless the key is already down."""
        if self.ptt_down:
            return [Ignored("PTT press while held", self.state)]
        self.ptt_down = True
        if self.state in (ParticipantState.NO_PERMISSION, ParticipantState.PENDING_RELEASE):
            self.state = ParticipantState.PENDING_REQUEST
            self.cause = ""
            return [SendFloorRequest(priority)]
        return [Ignored("PTT press with a request or grant in place", self.state)]

    def ptt_release(self) -> list[ParticipantEffect]:
        """PTT released: end the burst, or cancel the request; after a revoke, nothing."""
        if not self.ptt_down:
            return [Ignored("PTT release while up", self.state)]
        self.ptt_down = False
        if self.state is ParticipantState.HAS_PERMISSION:
            burst = self.burst_id if self.burst_id is not None else 0
            self.state = ParticipantState.PENDING_RELEASE
            self.burst_id = None
            return [EndBurst(burst, "released"), SendFloorRelease()]
        if self.state in (ParticipantState.PENDING_REQUEST, ParticipantState.QUEUED):
            # TS 24.380 6.2.4.3.3 / 6.2.4.8.3: a released PTT cancels the request.
            self.state = ParticipantState.NO_PERMISSION
            self.queue_position = 0
            return [SendFloorRelease()]
        return []  # the floor was taken away while the key was held: nothing to undo

    # --- the floor control server's messages -----------------------------------------------

    def granted(self, burst_id: int, duration_limit: float) -> list[ParticipantEffect]:
        """Floor Granted."""
        if self.state is ParticipantState.HAS_PERMISSION and burst_id == self.burst_id:
            return []  # the same grant again (a repeated request): keep talking
        if self.state not in (ParticipantState.PENDING_REQUEST, ParticipantState.QUEUED):
            return [Ignored("Floor Granted without a request", self.state)]
        if not self.ptt_down:
            # Granted after the officer let go (the cancel crossed the grant): give it back.
            self.state = ParticipantState.PENDING_RELEASE
            return [SendFloorRelease()]
        self.state = ParticipantState.HAS_PERMISSION
        self.burst_id = burst_id
        self.queue_position = 0
        return [StartBurst(burst_id, duration_limit)]

    def denied(self, cause: str) -> list[ParticipantEffect]:
        """Floor Deny: the request is refused (the key may still be held; no retry)."""
        if self.state not in (ParticipantState.PENDING_REQUEST, ParticipantState.QUEUED):
            return [Ignored("Floor Deny without a request", self.state)]
        self.state = ParticipantState.NO_PERMISSION
        self.queue_position = 0
        self.cause = cause
        return []

    def queued(self, position: int) -> list[ParticipantEffect]:
        """Floor Queue Position Info."""
        if self.state not in (ParticipantState.PENDING_REQUEST, ParticipantState.QUEUED):
            return [Ignored("Floor Queue Position Info without a request", self.state)]
        self.state = ParticipantState.QUEUED
        self.queue_position = position
        return []

    def revoked(self, cause: str) -> list[ParticipantEffect]:
        """Floor Revoke (pre-empted, too long, no permission): stop and release at once.

        TS 24.380 6.2.4.5.4: stop sending media, send Floor Release, 'U: pending
        Release'. The key stays as it is: letting go of it later does nothing.
        """
        if self.state is not ParticipantState.HAS_PERMISSION:
            return [Ignored("Floor Revoke while not talking", self.state)]
        burst = self.burst_id if self.burst_id is not None else 0
        self.state = ParticipantState.PENDING_RELEASE
        self.burst_id = None
        self.cause = cause
        return [EndBurst(burst, cause), SendFloorRelease()]

    def floor_idle(self) -> list[ParticipantEffect]:
        """Floor Idle: a pending release is done; a burst of ours the server ended (T1, a
        lost revoke) stops."""
        return self._floor_left("floor idle")

    def floor_taken(self, talker_is_me: bool) -> list[ParticipantEffect]:
        """Floor Taken: someone talks. Ours is over if we thought we still held it."""
        if talker_is_me:
            return []
        return self._floor_left("floor taken by another")

    def _floor_left(self, reason: str) -> list[ParticipantEffect]:
        if self.state is ParticipantState.PENDING_RELEASE:
            self.state = ParticipantState.NO_PERMISSION
        elif self.state is ParticipantState.HAS_PERMISSION:
            burst = self.burst_id if self.burst_id is not None else 0
            self.state = ParticipantState.NO_PERMISSION
            self.burst_id = None
            return [EndBurst(burst, reason)]
        return []

    def disconnected(self) -> list[ParticipantEffect]:
        """The control connection dropped: the server released everything of ours."""
        effects: list[ParticipantEffect] = []
        if self.state is ParticipantState.HAS_PERMISSION:
            effects.append(EndBurst(self.burst_id if self.burst_id is not None else 0, "link lost"))
        self.state = ParticipantState.NO_PERMISSION
        self.burst_id = None
        self.queue_position = 0
        return effects
