"""Control-plane constants, field types and the message base classes (see :mod:`ptt_protocol.control`)."""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal, TypeAlias, get_args

import msgspec

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

# Alert kinds (EmergencyAlert.kind), TS 22.179: an emergency outranks an imminent peril.
ALERT_EMERGENCY: Final = "emergency"
ALERT_IMMINENT_PERIL: Final = "imminent_peril"
AlertKind: TypeAlias = Literal["emergency", "imminent_peril"]

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
