"""The console's own events: what it did or learnt that the radio client does not report.

The app hands these to :meth:`tui.state.ConsoleState.apply` like any client event.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FloorReleased:
    """The dispatcher let go of the transmit key on ``channel_id``."""

    channel_id: int


@dataclass(frozen=True)
class Broadcasting:
    """The dispatcher started a broadcast group call to ``channel_ids``, or ended it (empty)."""

    channel_ids: tuple[int, ...]


@dataclass(frozen=True)
class TextSent:
    """The dispatcher sent a text (to exactly one of ``to_user`` / ``to_channel``)."""

    message_id: bytes
    text: str
    sent_at: float
    to_user: str | None = None
    to_channel: int | None = None


@dataclass(frozen=True)
class LocationText:
    """A sealed location the console opened (or could not): shown next to the user or alert."""

    user_id: str
    text: str
    alert_id: bytes | None = None


@dataclass(frozen=True)
class MembersKnown:
    """A channel's members from the verified roster in the console's keyring."""

    channel_id: int
    members: tuple[str, ...]
    roster_version: int


@dataclass(frozen=True)
class Note:
    """Something the console itself did or failed to do; ``kind="error"`` also shows in the status line."""

    kind: str
    text: str


@dataclass(frozen=True)
class CallPlaced:
    """The dispatcher placed a private call (the offer is out)."""

    call_id: bytes
    peer: str
    emergency: bool = False


@dataclass(frozen=True)
class NamesVerified:
    """Users' names from their credentials, which the client checked against the org root."""

    names: tuple[tuple[str, str], ...]
    """(user id, display name) pairs."""
