"""Channels, patches, instant recall and floor control (TS 24.380 vocabulary).

Part of the control protocol: see :mod:`ptt_protocol.control` for the framing and the rules
every message follows.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from ptt_protocol.control_types import (
    MAX_LIST_LENGTH,
    MAX_TUNNEL_DATAGRAM,
    U32,
    U63,
    Blob,
    ChannelId,
    ChannelInfo,
    Duration,
    Id,
    Member,
    Priority,
    Text,
    Time,
    _Message,
    _Part,
)

# --- Channels -----------------------------------------------------------------------------------


class ChannelList(_Message, frozen=True, kw_only=True):
    """Server -> client: the channels this user may affiliate to (after login and on change)."""

    channels: Annotated[tuple[ChannelInfo, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)]
    """Every channel the user is a member of."""


class Affiliate(_Message, frozen=True, kw_only=True):
    """Client -> server: listen to a channel (TS 24.379 affiliation)."""

    channel_id: ChannelId
    """Channel to join."""


class Deaffiliate(_Message, frozen=True, kw_only=True):
    """Client -> server: stop listening to a channel."""

    channel_id: ChannelId
    """Channel to leave."""


class SelectChannel(_Message, frozen=True, kw_only=True):
    """Client -> server: the channel PTT talks on (must be affiliated)."""

    channel_id: ChannelId
    """Channel to talk on."""


class Affiliated(_Message, frozen=True, kw_only=True):
    """Server -> client: affiliation confirmed, or the channel's membership changed."""

    channel_id: ChannelId
    """The channel."""
    name: Text
    """Display name."""
    members: Annotated[tuple[Member, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = ()
    """Current members."""
    epoch: U32 = 0
    """Current E2E key epoch, so the client knows which key it needs."""


class Deaffiliated(_Message, frozen=True, kw_only=True):
    """Server -> client: no longer affiliated (asked for, or removed from the channel)."""

    channel_id: ChannelId
    """The channel."""
    reason: Text = ""
    """Why, for display."""


class ChannelCreate(_Message, frozen=True, kw_only=True):
    """Dispatcher -> server: make a new channel (an incident channel, a patch of two channels).

    The server answers with :class:`ChannelCreated`; the creator then publishes the
    channel's first signed roster and key envelopes, as for any roster change.
    """

    name: Text
    """Display name, unique on the server."""
    temporary: bool = False
    """An incident channel (a patch's) the console deletes when it is over."""


class ChannelCreated(_Message, frozen=True, kw_only=True):
    """Server -> dispatcher: the channel exists now."""

    channel_id: ChannelId
    """Its id."""
    name: Text
    """Its display name."""


MAX_PATCHED: Final = 8
"""Channels one patch links (a district's patrol channels and an incident channel, say)."""


class Patch(_Message, frozen=True, kw_only=True):
    """Dispatcher -> server: link channels through a temporary channel; server -> every
    member of ``channel_id`` and every dispatcher: the patch is on (MCPTT group regroup of
    TS 23.379 10.2 / a TETRA patch).

    Nobody leaves their own channel: each member stays affiliated to it and selected on it,
    and its radio also affiliates to ``channel_id``, the patch's channel, whose roster holds
    the members of every linked channel (so E2E keys stay per channel: the patch's channel
    has its own epoch). While the patch is on, a press on a linked channel talks on the
    patch's channel and every linked channel hears it; an emergency stays on the channel it
    was raised on. The server re-sends active patches at login.

    ``order`` is the dispatcher's signed order (``crypto.patch_order``), which radios verify
    before following it: the relay's say-so would let a relay send an officer's speech to
    another channel. It expires within the hour; consoles on the patch re-sign it.
    """

    channel_id: ChannelId
    """The patch's own (temporary) channel."""
    linked: Annotated[tuple[ChannelId, ...], msgspec.Meta(max_length=MAX_PATCHED)]
    """The channels whose traffic crosses."""
    by_user: Annotated[str, msgspec.Meta(max_length=64)] = ""
    """Who made the patch (filled in by the server)."""
    order: Blob = b""
    """The signed patch order (opaque to the server's routing; it checks the signature)."""


class Unpatch(_Message, frozen=True, kw_only=True):
    """Dispatcher -> server -> the patch's audience: the patch through ``channel_id`` is over;
    radios leave the patch's channel and talk on their own again."""

    channel_id: ChannelId
    """The patch's channel."""


class ChannelDelete(_Message, frozen=True, kw_only=True):
    """Dispatcher or authority -> server: delete a channel (its recordings are kept until their
    retention ends). Refused while the channel is linked in a patch or has an active emergency."""

    channel_id: ChannelId
    """The channel."""


class ChannelDeleted(_Message, frozen=True, kw_only=True):
    """Server -> the channel's members and every dispatcher: the channel is gone."""

    channel_id: ChannelId
    """The channel."""
    name: Text = ""
    """Its name, for display."""
    by_user: Annotated[str, msgspec.Meta(max_length=64)] = ""
    """Who deleted it."""


class BurstInfo(_Part, frozen=True, kw_only=True):
    """One logged talk burst (instant recall)."""

    burst_key: U63
    """Server id of the recording."""
    burst_id: U32
    """The burst id of the floor grant (inner frames carry it)."""
    talker: Id
    """Who talked."""
    priority: Priority
    """At which priority."""
    started_at: Time
    """When it started."""
    duration: Duration = 0.0
    """How long it lasted."""
    frame_count: U32 = 0
    """Frames kept (0 once the recording expired)."""
    broadcast: bool = False
    """A dispatcher's broadcast group call (:class:`BroadcastRequest`)."""


class RecallList(_Message, frozen=True, kw_only=True):
    """Client -> server: the last bursts of a channel; server -> client: the answer."""

    channel_id: ChannelId
    """The channel (must be on the caller's roster)."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    """How many, newest first."""
    bursts: Annotated[tuple[BurstInfo, ...], msgspec.Meta(max_length=100)] = ()
    """Filled in by the server."""


class RecalledFrame(_Part, frozen=True, kw_only=True):
    """One recorded inner frame: still sealed end to end."""

    sequence: U32
    """Frame sequence in the burst."""
    flags: Annotated[int, msgspec.Meta(ge=0, le=255)]
    """Inner flags (signature frames included)."""
    frame: Annotated[bytes, msgspec.Meta(max_length=MAX_TUNNEL_DATAGRAM)]
    """The SFrame bytes, as the talker sealed them."""


class RecallFrames(_Message, frozen=True, kw_only=True):
    """Client -> server: the frames of a burst; server -> client: one chunk of them.

    The console decrypts them itself with the channel's epoch key: the server
    only ever had ciphertext.
    """

    channel_id: ChannelId
    """The channel of the burst."""
    burst_key: U63
    """Which burst (from :class:`RecallList`)."""
    frames: Annotated[tuple[RecalledFrame, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = ()
    """A chunk of frames, in sequence order (server -> client)."""
    last: bool = True
    """True on the last chunk."""


# --- Floor control (TS 24.380 vocabulary) ------------------------------------------------------


class FloorRequest(_Message, frozen=True, kw_only=True):
    """Client -> server: ask for permission to talk (TS 24.380 Floor Request)."""

    channel_id: ChannelId
    """Channel to talk on."""
    priority: Priority
    """Requested priority, 1 officer .. 4 emergency; the server caps it by role."""


class BroadcastRequest(_Message, frozen=True, kw_only=True):
    """Dispatcher -> server: a broadcast group call (TS 22.179 6.2.3): take the floor of every
    channel in ``channel_ids`` at once, one way, over their ordinary talk.

    One message rather than a flag on :class:`FloorRequest`, so that the server checks the
    whole call before it touches any floor (every channel exists, the dispatcher is on its
    roster and affiliated to it, no channel twice): a broadcast refused for one channel
    changes nothing on the others, and the policy table, which rules by message type, says
    who may broadcast. Each channel answers as for a FloorRequest (FloorGranted, or
    FloorDeny when an emergency or an imminent peril holds it); the dispatcher seals its
    voice under each channel's own key and ends the call with a FloorRelease per channel.
    """

    channel_ids: Annotated[
        tuple[ChannelId, ...], msgspec.Meta(min_length=1, max_length=MAX_PATCHED)
    ]
    """The channels to talk to (at most ``MAX_PATCHED``)."""


class FloorGranted(_Message, frozen=True, kw_only=True):
    """Server -> client: you may talk now (TS 24.380 Floor Granted)."""

    channel_id: ChannelId
    """The channel."""
    burst_id: U32
    """Id of this talk burst; media datagrams carry it."""
    duration_limit: Duration
    """Seconds before the floor is revoked (TS 24.380 T2 stop talking)."""


class FloorDeny(_Message, frozen=True, kw_only=True):
    """Server -> client: request refused (TS 24.380 Floor Deny)."""

    channel_id: ChannelId
    """The channel."""
    cause: Id
    """TS 24.380 reject cause name (see ``ptt_protocol.floor``)."""


class FloorTaken(_Message, frozen=True, kw_only=True):
    """Server -> listeners: someone holds the floor (TS 24.380 Floor Taken)."""

    channel_id: ChannelId
    """The channel."""
    user_id: Id
    """The talker."""
    display_name: Text = ""
    """The talker's name to show."""
    priority: Priority
    """The talker's effective priority."""
    burst_id: U32
    """Id of this talk burst."""
    since: Time
    """When the floor was granted."""
    broadcast: bool = False
    """The talker broadcasts to several channels (TS 22.179 6.2.3): one way, nobody answers."""


class FloorIdle(_Message, frozen=True, kw_only=True):
    """Server -> listeners: nobody holds the floor (TS 24.380 Floor Idle)."""

    channel_id: ChannelId
    """The channel."""


class FloorRelease(_Message, frozen=True, kw_only=True):
    """Client -> server: stop talking, or leave the queue (TS 24.380 Floor Release)."""

    channel_id: ChannelId
    """The channel."""


class FloorRevoke(_Message, frozen=True, kw_only=True):
    """Server -> talker: your floor is withdrawn; stop sending (TS 24.380 Floor Revoke)."""

    channel_id: ChannelId
    """The channel."""
    cause: Id
    """TS 24.380 revoke cause name (see ``ptt_protocol.floor``)."""


class FloorQueuePosition(_Message, frozen=True, kw_only=True):
    """Server -> client: your request is queued (TS 24.380 Floor Queue Position Info)."""

    channel_id: ChannelId
    """The channel."""
    position: U32
    """1 = next to talk."""
