"""Keys, rosters, credentials and the org authority's objects (all opaque to the relay).

Part of the control protocol: see :mod:`ptt_protocol.control` for the framing and the rules
every message follows.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ptt_protocol.control_types import (
    MAX_LIST_LENGTH,
    U32,
    Blob,
    ChannelId,
    Id,
    Label,
    RosterBlob,
    Text,
    UserIds,
    _Message,
    _Part,
)

# --- Keys, rosters, credentials -----------------------------------------------------------------


class KeyEnvelope(_Message, frozen=True, kw_only=True):
    """Either direction: a channel epoch key wrapped (HPKE) for one member."""

    channel_id: ChannelId
    """The channel."""
    epoch: U32
    """Key epoch."""
    recipient: Id
    """Member the envelope is wrapped for."""
    sender: Id | None = None
    """Who wrapped it; set by the server to the authenticated sender when relaying."""
    envelope: Blob
    """HPKE-wrapped key (opaque to the server)."""


class RosterUpdate(_Message, frozen=True, kw_only=True):
    """Either direction: a signed channel roster (who may hold the channel's key)."""

    channel_id: ChannelId
    """The channel."""
    version: U32
    """Roster version; clients refuse rollbacks."""
    signed_roster: RosterBlob
    """Roster signed by a dispatcher or admin credential (opaque to the server's routing)."""


class CredentialRequest(_Message, frozen=True, kw_only=True):
    """Client -> server: send me these users' credentials (to wrap keys for them)."""

    user_ids: UserIds
    """Users whose credentials are wanted."""


class Credentials(_Message, frozen=True, kw_only=True):
    """Server -> client: credentials, each verified by the client against the org root."""

    credentials: Annotated[tuple[Blob, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)]
    """Root-certified credentials."""


class RevocationUpdate(_Message, frozen=True, kw_only=True):
    """Server -> client: the current revocation list, signed by the org root.

    Also admin -> server: ``ptt-admin`` publishes a newer list this way; the server
    checks the root's signature and the version before storing and pushing it.
    """

    signed_list: Blob
    """Root-signed revocation list."""


# --- The org authority (ptt-admin) -----------------------------------------------------------


class Enroll(_Message, frozen=True, kw_only=True):
    """Admin -> server: make this root-issued credential its user's one enrolled device.

    The org authority issues credentials offline (it holds the org root); the server
    only checks the root's signature and stores what it is given. A user's previous
    device can no longer log in, and its live session is closed.
    """

    credential: Blob
    """The new root-issued credential."""


class Enrolled(_Message, frozen=True, kw_only=True):
    """Server -> admin: the credential of an :class:`Enroll` is stored."""

    user_id: Id
    """Whose credential."""
    device_id: Id
    """The device now enrolled."""
    replaced_device: Label = ""
    """The device it replaced ("" for a first enrolment)."""


class DirectoryRequest(_Message, frozen=True, kw_only=True):
    """Admin -> server: send the directory (every enrolled user and every channel)."""


class DirectoryUser(_Part, frozen=True, kw_only=True):
    """One enrolled user in a :class:`Directory`."""

    credential: Blob
    """The enrolled, root-issued credential (the admin verifies it)."""
    revoked: bool = False
    """The stored revocation list names this credential."""
    online: bool = False
    """A session of this user is logged in now."""


class DirectoryChannel(_Part, frozen=True, kw_only=True):
    """One channel in a :class:`Directory`."""

    channel_id: ChannelId
    """The channel."""
    name: Text
    """Its display name."""
    signed_roster: RosterBlob | None = None
    """Its current signed roster (the admin verifies it), None before the first."""


class Directory(_Message, frozen=True, kw_only=True):
    """Server -> admin: one part of the directory; the last part has ``last`` set."""

    users: Annotated[tuple[DirectoryUser, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = ()
    """Enrolled users in this part."""
    channels: Annotated[tuple[DirectoryChannel, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = ()
    """Channels in this part."""
    last: bool = True
    """No part follows."""
