"""Floor control's vocabulary (TS 24.380): priorities, causes, states, settings, and the
messages :class:`ptt_protocol.floor.FloorControl` emits. Importable from
:mod:`ptt_protocol.floor` too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, IntEnum

from ptt_protocol.errors import ProtocolError


class Priority(IntEnum):
    """Floor priority of a request; a larger value outranks a smaller one.

    TS 22.179 / DESIGN.md order: emergency > imminent peril > dispatcher >
    officer. The values are ours, not TS 24.380's 0-255 Floor Priority field;
    the wire codec maps them.
    """

    OFFICER = 1
    DISPATCHER = 2
    IMMINENT_PERIL = 3
    EMERGENCY = 4


class DenyCause(IntEnum):
    """Reject Cause values of a Floor Deny message (TS 24.380 clause 8.2.6.2)."""

    ANOTHER_MCPTT_CLIENT_HAS_PERMISSION = 1
    INTERNAL_FLOOR_CONTROL_SERVER_ERROR = 2
    ONLY_ONE_PARTICIPANT = 3
    RETRY_AFTER_TIMER_HAS_NOT_EXPIRED = 4
    RECEIVE_ONLY = 5
    NO_RESOURCES_AVAILABLE = 6
    QUEUE_FULL = 7
    BROADCAST_IN_PROGRESS = 200
    """Ours, not the standard's (it has no broadcast group call cause): TS 22.179 6.2.3
    makes a broadcast one way, so a request into one is refused, not queued behind it."""
    OTHER_REASON = 255

    @property
    def phrase(self) -> str:
        """The standard's Reject Phrase for this cause."""
        return _DENY_PHRASES[self]


_DENY_PHRASES: dict[DenyCause, str] = {
    DenyCause.ANOTHER_MCPTT_CLIENT_HAS_PERMISSION: "Another MCPTT client has permission",
    DenyCause.INTERNAL_FLOOR_CONTROL_SERVER_ERROR: "Internal floor control server error",
    DenyCause.ONLY_ONE_PARTICIPANT: "Only one participant",
    DenyCause.RETRY_AFTER_TIMER_HAS_NOT_EXPIRED: "Retry-after timer has not expired",
    DenyCause.RECEIVE_ONLY: "Receive only",
    DenyCause.NO_RESOURCES_AVAILABLE: "No resources available",
    DenyCause.QUEUE_FULL: "Queue full",
    DenyCause.BROADCAST_IN_PROGRESS: "Broadcast in progress",
    DenyCause.OTHER_REASON: "Other reason",
}


class RevokeCause(IntEnum):
    """Reject Cause values of a Floor Revoke message (TS 24.380 clause 8.2.10.2).

    A separate namespace from :class:`DenyCause`: 2 means "Media burst too
    long" here and "Internal floor control server error" in a Floor Deny.
    """

    ONLY_ONE_MCPTT_CLIENT = 1
    MEDIA_BURST_TOO_LONG = 2
    NO_PERMISSION_TO_SEND_A_MEDIA_BURST = 3
    MEDIA_BURST_PRE_EMPTED = 4
    NO_RESOURCES_AVAILABLE = 6
    OTHER_REASON = 255

    @property
    def phrase(self) -> str:
        """The standard's Reject Phrase for this cause."""
        return _REVOKE_PHRASES[self]


_REVOKE_PHRASES: dict[RevokeCause, str] = {
    RevokeCause.ONLY_ONE_MCPTT_CLIENT: "Only one MCPTT client",
    RevokeCause.MEDIA_BURST_TOO_LONG: "Media burst too long",
    RevokeCause.NO_PERMISSION_TO_SEND_A_MEDIA_BURST: "No permission to send a Media Burst",
    RevokeCause.MEDIA_BURST_PRE_EMPTED: "Media Burst pre-empted",
    RevokeCause.NO_RESOURCES_AVAILABLE: "No resources available",
    RevokeCause.OTHER_REASON: "Other reason",
}


class FloorState(Enum):
    """The floor control server's general state (TS 24.380 clause 6.3.4)."""

    IDLE = "G: Floor Idle"
    TAKEN = "G: Floor Taken"
    PENDING_REVOKE = "G: pending Floor Revoke"


class FloorInputError(ProtocolError):
    """A user id or priority handed to :class:`FloorControl` is not valid.

    It comes from a peer's message: drop the message. Nothing was changed.
    """


class FloorClockError(ValueError):
    """``now`` is not a finite number or is earlier than a time already seen.

    A bug in the caller: pass one monotonic clock (``time.monotonic()``).
    Nothing was changed.
    """


@dataclass(frozen=True)
class FloorConfig:
    """Floor policy of one channel. Durations are seconds.

    ``queue_capacity``: how many requests may wait (TS 24.380 queueing);
    0 turns queueing off, so a busy floor denies at once.
    ``t1_end_of_media``: T1; a holder silent this long loses the floor.
    ``t2_*``: T2 (stop talking) per holder priority; ``None`` = no limit.
    ``t3_grace``: T3; after Floor Revoke "Media burst too long" the holder
    keeps the floor this long to finish the sentence.

    Imminent peril gets the dispatcher's 60 s rather than the officer's 30 s:
    it outranks a dispatcher, so it should not be cut off sooner than one
    (TS 24.380 leaves T2 to local policy). Emergency has no limit.
    """

    queue_capacity: int = 8
    t1_end_of_media: float = 4.0
    t2_officer: float | None = 30.0
    t2_dispatcher: float | None = 60.0
    t2_imminent_peril: float | None = 60.0
    t2_emergency: float | None = None
    t3_grace: float = 3.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.queue_capacity, bool)
            or not isinstance(self.queue_capacity, int)
            or self.queue_capacity < 0
        ):
            raise ValueError(
                f"queue_capacity must be an int >= 0 (0 turns queueing off), "
                f"got {self.queue_capacity!r}"
            )
        if not _is_positive(self.t1_end_of_media):
            raise ValueError(f"t1_end_of_media must be > 0 s, got {self.t1_end_of_media!r}")
        for name in ("t2_officer", "t2_dispatcher", "t2_imminent_peril", "t2_emergency"):
            value = getattr(self, name)
            if value is not None and not _is_positive(value):
                raise ValueError(f"{name} must be > 0 s or None (no limit), got {value!r}")
        if not is_number(self.t3_grace) or not math.isfinite(self.t3_grace) or self.t3_grace < 0:
            raise ValueError(f"t3_grace must be >= 0 s, got {self.t3_grace!r}")

    def t2_stop_talking(self, priority: Priority) -> float | None:
        """T2 for a holder of this priority, or ``None`` when it has no limit."""
        if priority is Priority.EMERGENCY:
            return self.t2_emergency
        if priority is Priority.IMMINENT_PERIL:
            return self.t2_imminent_peril
        if priority is Priority.DISPATCHER:
            return self.t2_dispatcher
        return self.t2_officer


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


# --- Events (floor control messages to send) --------------------------------


@dataclass(frozen=True)
class FloorEvent:
    """A floor control message to send.

    ``to`` is the one user who gets it, or ``None`` for everyone on the
    channel; ``exclude`` is a user to leave out of a channel-wide message.
    """

    @property
    def to(self) -> str | None:
        """Recipient user id, or ``None`` for everyone on the channel."""
        return None

    @property
    def exclude(self) -> str | None:
        """User left out of a channel-wide message, if any."""
        return None


@dataclass(frozen=True)
class FloorGranted(FloorEvent):
    """Floor Granted to ``user``: it may send media in burst ``burst_id``.

    ``duration_limit`` is what is left of T2 (TS 24.380's Duration field), or
    ``None`` when this priority has no limit. ``priority`` is the priority the
    floor is held at (the message's Floor Priority field); read it here rather
    than from :attr:`FloorControl.holder_priority`, which is the state after
    the whole batch of events. ``broadcast``: the floor is held for a broadcast
    group call (TS 22.179 6.2.3).
    """

    user: str
    burst_id: int
    duration_limit: float | None
    priority: Priority
    broadcast: bool = False

    @property
    def to(self) -> str | None:
        return self.user

    def __str__(self) -> str:
        limit = "none" if self.duration_limit is None else f"{self.duration_limit:g}s"
        return (
            f"Floor Granted to={self.user} burst={self.burst_id} duration={limit} "
            f"priority={self.priority.name}{' broadcast' if self.broadcast else ''}"
        )


@dataclass(frozen=True)
class FloorDeny(FloorEvent):
    """Floor Deny (8.2.6) to ``user``; its request is gone (not queued)."""

    user: str
    cause: DenyCause

    @property
    def to(self) -> str | None:
        return self.user

    def __str__(self) -> str:
        return f"Floor Deny to={self.user} cause=#{int(self.cause)} {self.cause.phrase!r}"


@dataclass(frozen=True)
class FloorTaken(FloorEvent):
    """Floor Taken to everyone but ``talker``: ``talker`` now holds the floor
    (``broadcast``: for a broadcast group call, which listeners show as such)."""

    talker: str
    priority: Priority
    burst_id: int
    broadcast: bool = False

    @property
    def exclude(self) -> str | None:
        return self.talker

    def __str__(self) -> str:
        return (
            f"Floor Taken talker={self.talker} priority={self.priority.name} burst={self.burst_id}"
            f"{' broadcast' if self.broadcast else ''}"
        )


@dataclass(frozen=True)
class FloorIdle(FloorEvent):
    """Floor Idle to everyone: nobody holds the floor."""

    def __str__(self) -> str:
        return "Floor Idle"


@dataclass(frozen=True)
class FloorRevoke(FloorEvent):
    """Floor Revoke (8.2.10) to ``user``: stop sending media.

    ``grace`` is how many seconds the floor stays reserved for ``user``
    (T3 for "Media burst too long"; 0 when pre-empted: it is gone already).
    """

    user: str
    cause: RevokeCause
    grace: float

    @property
    def to(self) -> str | None:
        return self.user

    def __str__(self) -> str:
        return (
            f"Floor Revoke to={self.user} cause=#{int(self.cause)} {self.cause.phrase!r} "
            f"grace={self.grace:g}s"
        )


@dataclass(frozen=True)
class FloorQueuePositionInfo(FloorEvent):
    """Floor Queue Position Info to ``user``: 1-based place in the queue."""

    user: str
    position: int

    @property
    def to(self) -> str | None:
        return self.user

    def __str__(self) -> str:
        return f"Floor Queue Position Info to={self.user} position={self.position}"
