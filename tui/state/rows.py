"""The rows the console shows, and :class:`Changed`, which says which of them an event touched.

Plain dataclasses: the handlers in the sibling modules fill them in, the widgets read them.
Names and texts in them come from the network and are display data only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ptt_protocol import control


class Changed(enum.Flag):
    """Which parts of the console an event changed (the widgets to re-render)."""

    NONE = 0
    CHANNELS = enum.auto()
    PRESENCE = enum.auto()
    EMERGENCIES = enum.auto()
    MESSAGES = enum.auto()
    LOG = enum.auto()
    STATUS = enum.auto()
    ALARM = enum.auto()
    """A new, unacknowledged emergency: ring the bell."""


@dataclass
class ChannelRow:
    """One channel as the console shows it."""

    channel_id: int
    name: str
    members: tuple[str, ...] = ()
    affiliated: bool = False
    talker: str | None = None
    talker_name: str = ""
    talker_priority: int = 0
    broadcast: bool = False
    """The talker (the console itself, or another dispatcher) broadcasts (TS 22.179 6.2.3)."""
    burst_id: int = 0
    verified: bool = False
    """The talker's burst signature checked (``events.TalkerVerified``)."""
    distrusted: bool = False
    """Audio of this burst was found forged or not covered by the talker's signature
    (``events.ForgedAudio``, ``events.TalkerUnverified``): no mark for the rest of it."""
    talk_started: float | None = None
    my_floor: str = "idle"
    """The console's own floor state here: idle, requested, granted, queued, denied, revoked."""
    floor_cause: str = ""
    queue_position: int = 0
    """The console's place in this channel's floor queue (the server tells each requester only its own)."""
    epoch: int = 0
    roster_version: int = 0
    last_activity: float | None = None


@dataclass
class PresenceRow:
    """One user's presence."""

    user_id: str
    display_name: str = ""
    online: bool = False
    status: str = control.STATUS_OFFLINE
    channel_id: int | None = None
    last_seen: float = 0.0
    location: str = ""


@dataclass
class Emergency:
    """One emergency alert; active until cancelled."""

    alert_id: bytes
    user_id: str
    channel_id: int
    raised_at: float
    location: str = ""
    acked_by: str | None = None
    cancelled_by: str | None = None
    kind: str = "emergency"
    """``emergency`` or ``imminent_peril`` (an emergency press upgrades a peril)."""

    @property
    def active(self) -> bool:
        return self.cancelled_by is None

    @property
    def label(self) -> str:
        """``EMERGENCY`` or ``IMMINENT PERIL``, as the console shows an unacknowledged one."""
        return "IMMINENT PERIL" if self.kind == "imminent_peril" else "EMERGENCY"


@dataclass(frozen=True)
class Conversation:
    """A channel conversation or a direct one with a user."""

    channel_id: int | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if (self.channel_id is None) == (self.user_id is None):
            raise ValueError("a conversation is with exactly one channel or one user")

    @classmethod
    def channel(cls, channel_id: int) -> Conversation:
        return cls(channel_id=channel_id)

    @classmethod
    def user(cls, user_id: str) -> Conversation:
        return cls(user_id=user_id)


@dataclass
class ChatMessage:
    """One text in a conversation."""

    message_id: bytes
    from_user: str
    text: str
    sent_at: float
    outgoing: bool
    stored: bool = False
    delivered_to: set[str] = field(default_factory=set)
    read_by: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Notice:
    """A line for the status line: the outcome of the console's last action."""

    text: str
    error: bool
    at: float


@dataclass
class LogEntry:
    """One line of the event log; repeats of the same line are counted, not added."""

    at: float
    kind: str
    text: str
    count: int = 1
    seq: int = 0
    """Position in the whole session's log (keeps counting after old entries are dropped)."""
