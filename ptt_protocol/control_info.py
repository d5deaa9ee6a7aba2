"""Presence, texts and emergencies: what officers and dispatchers tell each other.

Part of the control protocol: see :mod:`ptt_protocol.control` for the framing and the rules
every message follows.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ptt_protocol.control_types import (
    MAX_LIST_LENGTH,
    AlertKind,
    Blob,
    ChannelId,
    Id,
    MessageId,
    ReceiptKind,
    Status,
    Text,
    Time,
    UserIds,
    _Message,
    _Part,
)

# --- Presence and status ----------------------------------------------------------------------


class PresenceUpdate(_Message, frozen=True, kw_only=True):
    """Server -> subscriber: one user's presence changed."""

    user_id: Id
    """Whose presence."""
    display_name: Text = ""
    """The user's name to show."""
    online: bool
    """Has a live session."""
    status: Status
    """``STATUS_*``."""
    channel_id: ChannelId | None = None
    """Selected channel, if any."""
    last_seen: Time
    """Last activity."""
    sealed_location: Blob | None = None
    """Last location, sealed for the organisation's members (opaque to the server)."""


class PresenceSubscribe(_Message, frozen=True, kw_only=True):
    """Client -> server: send me PresenceUpdate for these users (None = everyone)."""

    user_ids: UserIds | None = None
    """Users to follow; None follows every user (dispatchers)."""


class EnrolledUser(_Part, frozen=True, kw_only=True):
    """One enrolled user in :class:`EnrolledUsers`."""

    user_id: Id
    """The user."""
    last_heard: Time | None = None
    """When the user last talked: the end of their newest burst in the burst log (None:
    never heard)."""


class EnrolledUsers(_Message, frozen=True, kw_only=True):
    """Server -> presence subscriber: one part of the enrolled users (before the presence
    snapshot), so a dispatcher sees officers who never logged in and can text them for later
    delivery. No names: the console takes them from the users' credentials, which it checks
    against the org root. The last part has ``last`` set."""

    users: Annotated[tuple[EnrolledUser, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = ()
    """Enrolled users in this part."""
    last: bool = True
    """No part follows."""


class SetStatus(_Message, frozen=True, kw_only=True):
    """Client -> server: change my status."""

    status: Status
    """``STATUS_*``."""


class LocationReport(_Message, frozen=True, kw_only=True):
    """Client -> server: my current location, sealed end to end."""

    sealed_location: Blob
    """Sealed location (opaque to the server)."""


# --- Text messages -------------------------------------------------------------------------------


def _check_one_target(to_user: str | None, to_channel: int | None) -> None:
    """Exactly one destination: a user (direct) or a channel (group)."""
    if (to_user is None) == (to_channel is None):
        raise ValueError("a text goes to exactly one of to_user or to_channel")


class TextSend(_Message, frozen=True, kw_only=True):
    """Client -> server: send a sealed text to one user or to a channel."""

    message_id: MessageId
    """Random id; a retry with the same id is delivered once."""
    to_user: Id | None = None
    """Direct recipient (exclusive with ``to_channel``)."""
    to_channel: ChannelId | None = None
    """Channel recipient (exclusive with ``to_user``)."""
    sealed: Blob
    """Sealed text (opaque to the server)."""

    def __post_init__(self) -> None:
        _check_one_target(self.to_user, self.to_channel)


class TextDeliver(_Message, frozen=True, kw_only=True):
    """Server -> client: a sealed text (live, or stored while the recipient was offline)."""

    message_id: MessageId
    """The sender's message id."""
    from_user: Id
    """Authenticated sender."""
    to_user: Id | None = None
    """Direct recipient (exclusive with ``to_channel``)."""
    to_channel: ChannelId | None = None
    """Channel recipient (exclusive with ``to_user``)."""
    sealed: Blob
    """Sealed text."""
    sent_at: Time
    """When the server accepted it."""

    def __post_init__(self) -> None:
        _check_one_target(self.to_user, self.to_channel)


class TextReceipt(_Message, frozen=True, kw_only=True):
    """Either direction: a text was delivered to, or read by, ``by_user``."""

    message_id: MessageId
    """The text's id."""
    kind: ReceiptKind
    """``RECEIPT_DELIVERED`` or ``RECEIPT_READ``."""
    by_user: Id
    """Who received or read it (set by the server to the authenticated user)."""


# --- Emergencies ---------------------------------------------------------------------------------


class EmergencyAlert(_Message, frozen=True, kw_only=True):
    """Either direction: an officer pressed the emergency (or imminent-peril) button.

    TS 22.179: while its alert is active the officer's floor requests get emergency
    priority, or for an imminent peril the level between emergency and dispatcher; an
    emergency press over an active imminent peril makes it an emergency, never the reverse.
    """

    alert_id: MessageId
    """Random id of this alert."""
    user_id: Id
    """Who is in danger (set by the server to the authenticated sender)."""
    channel_id: ChannelId
    """Channel the alert is raised on."""
    sealed_location: Blob | None = None
    """Location at the moment of the alert, sealed end to end."""
    raised_at: Time
    """When the button was pressed."""
    kind: AlertKind = "emergency"
    """``ALERT_EMERGENCY`` or ``ALERT_IMMINENT_PERIL``."""


class EmergencyAck(_Message, frozen=True, kw_only=True):
    """Either direction: a dispatcher acknowledged an alert."""

    alert_id: MessageId
    """The alert."""
    by_user: Id
    """Who acknowledged (set by the server to the authenticated sender)."""


class EmergencyCancel(_Message, frozen=True, kw_only=True):
    """Either direction: an alert was cancelled (false alarm or resolved)."""

    alert_id: MessageId
    """The alert."""
    by_user: Id
    """Who cancelled (set by the server to the authenticated sender)."""
