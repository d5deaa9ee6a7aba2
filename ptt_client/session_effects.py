"""What the radio's session core asks its I/O loop to do (``ptt_client.session_core``).

Each effect is a frozen record: a control message to send, an event to report, work for
the key ring, the media path or the texts. :class:`ptt_client.client.RadioClient` runs
them in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptt_protocol import control

__all__ = [
    "BurstEnded",
    "BurstStarted",
    "CallMessage",
    "Dropped",
    "Effect",
    "Emit",
    "HeardBurstOver",
    "KeyMaterial",
    "MediaArrived",
    "PatchArrived",
    "PongArrived",
    "Send",
    "TalkerNamed",
    "TextArrived",
    "TextStored",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Send this control message."""

    message: control.Message


@dataclass(frozen=True, slots=True)
class Emit:
    """Report this event (a control message or a ``ptt_client.events`` event)."""

    event: object


@dataclass(frozen=True, slots=True)
class BurstStarted:
    """Floor Granted: seal media in ``burst_id`` on ``channel_id`` from now on."""

    channel_id: int
    burst_id: int


@dataclass(frozen=True, slots=True)
class BurstEnded:
    """This radio's burst is over: send its final signed statement (its tail is covered)."""

    channel_id: int
    burst_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class TalkerNamed:
    """Floor Taken: the key ring learns who talks in which burst (and plays early frames)."""

    message: control.FloorTaken


@dataclass(frozen=True, slots=True)
class HeardBurstOver:
    """The burst heard on ``channel_id`` is over (``released``: by its talker)."""

    channel_id: int
    released: bool


@dataclass(frozen=True, slots=True)
class PatchArrived:
    """A patch message: follow it once its signed order checks out (``ptt_client.patch_orders``)."""

    message: control.Patch


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A roster, key envelope, revocation list or credentials for the key ring."""

    message: (
        control.RosterUpdate | control.KeyEnvelope | control.RevocationUpdate | control.Credentials
    )


@dataclass(frozen=True, slots=True)
class MediaArrived:
    """A media datagram came over the WebSocket tunnel."""

    datagram: bytes


@dataclass(frozen=True, slots=True)
class PongArrived:
    nonce: int


@dataclass(frozen=True, slots=True)
class TextArrived:
    """A sealed text to open (it may need the sender's credential first)."""

    message: control.TextDeliver


@dataclass(frozen=True, slots=True)
class TextStored:
    """The server stored our text ``message_id``: stop re-sending it."""

    message_id: bytes


@dataclass(frozen=True, slots=True)
class CallMessage:
    """Private-call signalling: for the radio's calls (``ptt_client.calls``)."""

    message: control.Message


@dataclass(frozen=True, slots=True)
class Dropped:
    """A message that has no meaning now: nothing changed (log it)."""

    message: control.Message
    why: str


Effect = (
    Send
    | CallMessage
    | Emit
    | BurstStarted
    | BurstEnded
    | TalkerNamed
    | HeardBurstOver
    | KeyMaterial
    | PatchArrived
    | MediaArrived
    | PongArrived
    | TextArrived
    | TextStored
    | Dropped
)
