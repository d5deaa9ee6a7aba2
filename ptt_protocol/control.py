"""Every control-plane message, and their wire encoding.

The control plane is one TLS WebSocket per client carrying binary frames. A
frame is::

    PROTOCOL_VERSION (1 byte) | msgpack map with a "type" tag and the fields

Each message is a frozen ``msgspec.Struct``; all of them form the tagged union
:data:`Message`, whose tags are the snake_case class names
(``FloorRequest`` -> ``"floor_request"``). :func:`encode` and :func:`decode`
are the only way bytes are made or read. :func:`decode` trusts nothing: the
frame size, the version, every field's type and every length are checked, and
any failure is a :class:`~ptt_protocol.errors.ProtocolError` - nothing else
escapes.

Conventions:

- ``user_id``/``device_id``: short strings (<= 64 chars); display text
  (names, reasons, error text) <= 4096 chars.
- ``channel_id`` and ``session_index``: u32, assigned by the server; channel
  *names* are display text only.
- Message, alert ids: 16 random bytes, for de-duplication of retries.
- Times: float unix seconds; durations: float seconds.
- Priorities are plain ints (1 officer, 2 dispatcher, 3 imminent peril,
  4 emergency - TS 22.179 order) and floor causes plain strings; the floor
  state machine (``ptt_protocol.floor``) owns their meaning.
- Opaque crypto blobs (credentials, signatures, key envelopes, signed rosters,
  sealed texts and locations) are ``bytes`` <= 16 KiB: the server relays them
  and never looks inside.
- Variable-length sequences are tuples (msgpack arrays) of <= 1000 items, so
  frozen messages are really immutable.
- Fields a client cannot be trusted with (``user_id`` in an alert,
  ``sender`` of an envelope) are overwritten by the server with the
  authenticated identity before relaying.
- Unknown fields are ignored, so a newer peer may add optional fields within
  the same ``PROTOCOL_VERSION``; any incompatible change bumps the version.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args

import msgspec

from ptt_protocol.errors import MalformedError, ProtocolError, UnsupportedVersionError

PROTOCOL_VERSION: Final = 1
"""First byte of every control frame."""

MAX_MESSAGE_SIZE: Final = 64 * 1024
"""Largest control frame, version byte included; checked before any decoding."""

MAX_ID_LENGTH: Final = 64
"""Longest user id, device id, error code, floor cause (characters)."""

MAX_TEXT_LENGTH: Final = 4096
"""Longest display text: names, reasons, error text (characters)."""

MAX_BLOB_SIZE: Final = 16 * 1024
"""Largest opaque crypto blob: credential, signature, envelope, roster, sealed text."""

MAX_LIST_LENGTH: Final = 1000
"""Most items in any sequence field."""

MAX_HOST_LENGTH: Final = 255
"""Longest host name (RFC 1035 limits a name to 255 octets)."""

MAX_TUNNEL_DATAGRAM: Final = 2048
"""Largest media datagram carried in :class:`MediaTunnel` (media datagrams are <= 1200)."""

NONCE_SIZE: Final = 32
"""Login challenge nonces; fixed, so the signed statement ``server || client`` is unambiguous."""

MESSAGE_ID_SIZE: Final = 16
"""Random ids of texts and alerts."""

HOP_KEY_SIZE: Final = 32
"""The media hop-layer secret given in :class:`LoginOk`."""

PRIORITY_MIN: Final = 1
"""Lowest floor priority (officer)."""

PRIORITY_MAX: Final = 4
"""Highest floor priority (emergency)."""

MAX_TIME: Final = 1e11
"""Latest accepted unix time (year ~5100); rejects infinities and absurd clocks."""

MAX_DURATION: Final = 86400.0
"""Longest duration field (one day)."""

# Error codes (Error.code). Clients show unknown codes as "internal", so the
# field is a plain string: a newer server may add codes without breaking them.
ERROR_BAD_MESSAGE: Final = "bad_message"
ERROR_AUTH_FAILED: Final = "auth_failed"
ERROR_CREDENTIAL_EXPIRED: Final = "credential_expired"
ERROR_CREDENTIAL_REVOKED: Final = "credential_revoked"
ERROR_UNKNOWN_ROOT: Final = "unknown_root"
ERROR_NOT_MEMBER: Final = "not_member"
ERROR_RATE_LIMITED: Final = "rate_limited"
ERROR_NOT_FOUND: Final = "not_found"
ERROR_FORBIDDEN: Final = "forbidden"
ERROR_INTERNAL: Final = "internal"
ERROR_LOGGED_IN_ELSEWHERE: Final = "logged_in_elsewhere"
"""This credential logged in again (another device, or another copy of the bundle): the
earlier session ends and must not retry, or two devices would take turns forever."""
ERROR_CODES: Final = frozenset(
    {
        ERROR_BAD_MESSAGE,
        ERROR_AUTH_FAILED,
        ERROR_CREDENTIAL_EXPIRED,
        ERROR_CREDENTIAL_REVOKED,
        ERROR_UNKNOWN_ROOT,
        ERROR_NOT_MEMBER,
        ERROR_RATE_LIMITED,
        ERROR_NOT_FOUND,
        ERROR_FORBIDDEN,
        ERROR_INTERNAL,
        ERROR_LOGGED_IN_ELSEWHERE,
    }
)
"""Every error code this release sends."""

# Officer status (SetStatus, PresenceUpdate). A closed set: the decoder rejects others.
STATUS_AVAILABLE: Final = "available"
STATUS_BUSY: Final = "busy"
STATUS_EN_ROUTE: Final = "en_route"
STATUS_ON_SCENE: Final = "on_scene"
STATUS_EMERGENCY: Final = "emergency"
STATUS_OFFLINE: Final = "offline"
Status: TypeAlias = Literal["available", "busy", "en_route", "on_scene", "emergency", "offline"]
STATUSES: Final[tuple[str, ...]] = get_args(Status)
"""Every status value, in display order."""

# Text receipts (TextReceipt.kind).
RECEIPT_DELIVERED: Final = "delivered"
RECEIPT_READ: Final = "read"
RECEIPT_STORED: Final = "stored"
"""Server -> sender: the message is stored and will be delivered; stop re-sending it."""
ReceiptKind: TypeAlias = Literal["delivered", "read", "stored"]

# Field types. Every variable-length field carries a cap (STYLE.md: cap every
# variable-length field); msgspec enforces them while decoding.
U32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]
# msgspec bounds must fit an int64, so "u64" fields are 63-bit.
U63 = Annotated[int, msgspec.Meta(ge=0, le=0x7FFF_FFFF_FFFF_FFFF)]
ChannelId = U32
Priority = Annotated[int, msgspec.Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Label = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LENGTH)]
Host = Annotated[str, msgspec.Meta(max_length=MAX_HOST_LENGTH)]
Blob = Annotated[bytes, msgspec.Meta(max_length=MAX_BLOB_SIZE)]
# A signed roster names every member (about 50 bytes each): up to 1000 members fit.
RosterBlob = Annotated[bytes, msgspec.Meta(max_length=MAX_MESSAGE_SIZE - 1024)]
MessageId = Annotated[bytes, msgspec.Meta(min_length=MESSAGE_ID_SIZE, max_length=MESSAGE_ID_SIZE)]
Nonce = Annotated[bytes, msgspec.Meta(min_length=NONCE_SIZE, max_length=NONCE_SIZE)]
HopKey = Annotated[bytes, msgspec.Meta(min_length=HOP_KEY_SIZE, max_length=HOP_KEY_SIZE)]
TunnelDatagram = Annotated[bytes, msgspec.Meta(max_length=MAX_TUNNEL_DATAGRAM)]
Time = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_TIME)]
Duration = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_DURATION)]
Interval = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_DURATION)]
UserIds = Annotated[tuple[Id, ...], msgspec.Meta(max_length=MAX_LIST_LENGTH)]


def _tag(class_name: str) -> str:
    """``FloorRequest`` -> ``floor_request``: the wire tag of a message class."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


class _Message(msgspec.Struct, frozen=True, kw_only=True, tag=_tag, tag_field="type"):
    """Base of every control message: frozen, keyword-only, tagged by its snake_case name."""


class _Part(msgspec.Struct, frozen=True, kw_only=True):
    """Base of untagged records nested inside messages."""


class ChannelInfo(_Part, frozen=True, kw_only=True):
    """One channel the user may affiliate to."""

    channel_id: ChannelId
    """Server-assigned channel number."""
    name: Text
    """Display name."""


class Member(_Part, frozen=True, kw_only=True):
    """One member of a channel."""

    user_id: Id
    """The member's user id."""
    display_name: Text = ""
    """Name to show, from the member's credential."""


# --- Login (server speaks first) -------------------------------------------------------------


class Hello(_Message, frozen=True, kw_only=True):
    """Server -> client, first frame: the login challenge."""

    server_nonce: Nonce
    """Fresh random challenge; the client signs it (``ptt_protocol.login``)."""
    server_time: Time
    """Server clock, so the client can spot a wrong clock before credential checks fail."""
    server_name: Label = ""
    """Display name of this server or district."""


class Login(_Message, frozen=True, kw_only=True):
    """Client -> server: proves possession of an enrolled credential."""

    credential: Blob
    """The device's credential, certified by the org root."""
    signature: Blob
    """Credential key's signature over the login statement (challenge, nonces, TLS binding)."""
    client_nonce: Nonce
    """Fresh random bytes from the client, part of the signed statement."""
    client_software: Label = ""
    """Client name and version, for the operator's logs."""


class LoginOk(_Message, frozen=True, kw_only=True):
    """Server -> client: login accepted; media parameters for the UDP hop layer."""

    user_id: Id
    """The authenticated user."""
    session_index: U32
    """Media session index to put in every datagram header."""
    hop_key: HopKey
    """Secret from which both directional hop-layer keys are derived."""
    media_port: Port
    """UDP port of the media relay."""
    media_host: Host = ""
    """Host of the media relay; empty means the control connection's host."""
    server_time: Time
    """Server clock at login."""
    heartbeat_interval: Interval
    """Seconds between keepalives (Ping and UDP KEEPALIVE) the client must send."""


class Error(_Message, frozen=True, kw_only=True):
    """Server -> client: a request was refused. ``code`` is one of ``ERROR_CODES``."""

    code: Id
    """Machine-readable reason (``ERROR_*``)."""
    text: Text = ""
    """What the person can do about it; never internal details."""


class Goodbye(_Message, frozen=True, kw_only=True):
    """Server -> client: the server is shutting down or dropping this session."""

    reason: Text
    """Why, for display."""
    retry_after: Duration = 0.0
    """Seconds to wait before reconnecting (spreads a fleet's reconnects)."""


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
    """An incident channel (patch, regroup) the console deletes when it is over."""


class ChannelCreated(_Message, frozen=True, kw_only=True):
    """Server -> dispatcher: the channel exists now."""

    channel_id: ChannelId
    """Its id."""
    name: Text
    """Its display name."""


class Regroup(_Message, frozen=True, kw_only=True):
    """Dispatcher -> server -> each listed user: join ``channel_id`` and talk on it (dynamic regroup).

    Radios affiliate to and select the channel at once; ``until`` (0 = until cancelled)
    is when they go back to their own channel. Patching two channels is a regroup of
    both channels' members into an incident channel whose roster holds them all,
    so end-to-end keys stay per channel.
    """

    channel_id: ChannelId
    """The incident channel."""
    user_ids: UserIds = ()
    """Who is pulled in (filled in by the dispatcher; the server sends each their own copy)."""
    until: Time = 0.0
    """Unix time the regroup ends; 0 = until :class:`Ungroup`."""


class Ungroup(_Message, frozen=True, kw_only=True):
    """Dispatcher -> server -> each member: the regroup (or patch) is over; go back."""

    channel_id: ChannelId
    """The incident channel."""


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


# --- Emergencies ---------------------------------------------------------------------------------


class EmergencyAlert(_Message, frozen=True, kw_only=True):
    """Either direction: an officer pressed the emergency button."""

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


# --- Liveness and media fallback -----------------------------------------------------------------


class Ping(_Message, frozen=True, kw_only=True):
    """Either direction: are you there? Answer with a Pong carrying the same nonce."""

    nonce: U63
    """Echoed in the Pong."""


class Pong(_Message, frozen=True, kw_only=True):
    """Answer to a Ping."""

    nonce: U63
    """The Ping's nonce."""


class MediaTunnel(_Message, frozen=True, kw_only=True):
    """Either direction: a media datagram carried over the WebSocket when UDP is blocked."""

    datagram: TunnelDatagram
    """A whole hop-layer datagram (``ptt_protocol.media``), unchanged."""


Message: TypeAlias = (
    Hello
    | Login
    | LoginOk
    | Error
    | Goodbye
    | ChannelList
    | Affiliate
    | Deaffiliate
    | SelectChannel
    | Affiliated
    | Deaffiliated
    | ChannelCreate
    | ChannelCreated
    | Regroup
    | Ungroup
    | RecallList
    | RecallFrames
    | FloorRequest
    | FloorGranted
    | FloorDeny
    | FloorTaken
    | FloorIdle
    | FloorRelease
    | FloorRevoke
    | FloorQueuePosition
    | PresenceUpdate
    | PresenceSubscribe
    | SetStatus
    | LocationReport
    | TextSend
    | TextDeliver
    | TextReceipt
    | KeyEnvelope
    | RosterUpdate
    | CredentialRequest
    | Credentials
    | RevocationUpdate
    | Enroll
    | Enrolled
    | DirectoryRequest
    | Directory
    | EmergencyAlert
    | EmergencyAck
    | EmergencyCancel
    | Ping
    | Pong
    | MediaTunnel
)
"""Any control message."""

MESSAGE_TYPES: Final[tuple[type[Message], ...]] = get_args(Message)
"""Every message class, in the order of :data:`Message`."""

_VERSION_PREFIX: Final = bytes([PROTOCOL_VERSION])
_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Message)


def encode(msg: Message) -> bytes:
    """The control frame for ``msg``: version byte, then msgpack.

    Raises :class:`ProtocolError` if the frame would exceed ``MAX_MESSAGE_SIZE``
    (the peer would refuse it). Field caps are enforced by the receiver's
    :func:`decode`, not here.
    """
    frame = _VERSION_PREFIX + _ENCODER.encode(msg)
    if len(frame) > MAX_MESSAGE_SIZE:
        raise ProtocolError(
            f"{type(msg).__name__} encodes to {len(frame)} bytes, over the "
            f"{MAX_MESSAGE_SIZE}-byte frame limit: split it into smaller messages"
        )
    return frame


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Parse one control frame; raises :class:`ProtocolError` (and nothing else) if invalid."""
    size = len(data)
    if size == 0:
        raise MalformedError("empty control frame")
    if size > MAX_MESSAGE_SIZE:
        raise MalformedError(f"control frame of {size} bytes exceeds {MAX_MESSAGE_SIZE}")
    version = data[0]
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(
            f"control protocol version {version}, this software speaks "
            f"{PROTOCOL_VERSION}: update the older side"
        )
    try:
        msg: Message = _DECODER.decode(memoryview(data)[1:])
    except msgspec.ValidationError as exc:
        # Unknown tag, wrong field type, violated cap, missing field, bad target.
        raise MalformedError(f"invalid control message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedError(f"control frame is not valid msgpack: {exc}") from None
    except RecursionError:
        raise MalformedError("control frame nests too deeply") from None
    except Exception as exc:  # network input must never crash the caller
        raise MalformedError(f"control frame rejected ({type(exc).__name__})") from None
    return msg


def tag_of(cls: type[Message] | Message) -> str:
    """The wire tag (``"floor_request"``) of a message class or instance."""
    info: Any = cls.__struct_config__
    tag: str = info.tag
    return tag
