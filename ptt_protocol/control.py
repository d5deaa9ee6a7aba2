"""Every control-plane message, and their wire encoding.

The control plane is one TLS WebSocket per client carrying binary frames. A
frame is::

    PROTOCOL_VERSION (1 byte) | msgpack map with a "type" tag and the fields

The messages are defined by family in :mod:`ptt_protocol.control_session`,
:mod:`~ptt_protocol.control_channels`, :mod:`~ptt_protocol.control_info`,
:mod:`~ptt_protocol.control_keys` and :mod:`~ptt_protocol.control_calls` (field types and limits in
:mod:`~ptt_protocol.control_types`), and all are importable from here. Each message is a
frozen ``msgspec.Struct``; all of them form the tagged union
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

from typing import Any, Final, TypeAlias, get_args

import msgspec

from ptt_protocol.control_calls import (
    CALL_FULL_DUPLEX,
    CALL_HALF_DUPLEX,
    CALL_MODES,
    COMMENCEMENT_AUTOMATIC,
    COMMENCEMENT_MANUAL,
    END_BUSY,
    END_FAILED,
    END_FORBIDDEN,
    END_HANGUP,
    END_NO_ANSWER,
    END_OFFLINE,
    END_PEER_GONE,
    END_PREEMPTED,
    END_RATE_LIMITED,
    END_REASONS,
    END_REFUSED,
    CallAnswer,
    CallEnd,
    CallIncoming,
    CallLog,
    CallLogRequest,
    CallMode,
    CallOffer,
    CallRecord,
    CallRinging,
    CallTalk,
    CallTalker,
    Commencement,
    EndReason,
    IceServer,
    IceServers,
    IceServersRequest,
)
from ptt_protocol.control_channels import (
    MAX_PATCHED,
    Affiliate,
    Affiliated,
    BroadcastRequest,
    BurstInfo,
    ChannelCreate,
    ChannelCreated,
    ChannelDelete,
    ChannelDeleted,
    ChannelList,
    Deaffiliate,
    Deaffiliated,
    FloorDeny,
    FloorGranted,
    FloorIdle,
    FloorQueuePosition,
    FloorRelease,
    FloorRequest,
    FloorRevoke,
    FloorTaken,
    Patch,
    RecalledFrame,
    RecallFrames,
    RecallList,
    SelectChannel,
    Unpatch,
)
from ptt_protocol.control_info import (
    EmergencyAck,
    EmergencyAlert,
    EmergencyCancel,
    EnrolledUser,
    EnrolledUsers,
    LocationReport,
    PresenceSubscribe,
    PresenceUpdate,
    SetStatus,
    TextDeliver,
    TextReceipt,
    TextSend,
)
from ptt_protocol.control_keys import (
    CredentialRequest,
    Credentials,
    Directory,
    DirectoryChannel,
    DirectoryRequest,
    DirectoryUser,
    Enroll,
    Enrolled,
    KeyEnvelope,
    RevocationUpdate,
    RosterUpdate,
)
from ptt_protocol.control_link import (
    MAX_JITTER_MS,
    MAX_LOSS_RUN,
    LinkReport,
    ReceiverReport,
    mean_loss_run,
)
from ptt_protocol.control_session import (
    Error,
    Goodbye,
    Hello,
    Login,
    LoginOk,
    MediaTunnel,
    Ping,
    Pong,
)
from ptt_protocol.control_types import (
    ALERT_EMERGENCY,
    ALERT_IMMINENT_PERIL,
    ERROR_AUTH_FAILED,
    ERROR_BAD_MESSAGE,
    ERROR_CODES,
    ERROR_CREDENTIAL_EXPIRED,
    ERROR_CREDENTIAL_REVOKED,
    ERROR_FORBIDDEN,
    ERROR_INTERNAL,
    ERROR_LOGGED_IN_ELSEWHERE,
    ERROR_NOT_FOUND,
    ERROR_NOT_MEMBER,
    ERROR_RATE_LIMITED,
    ERROR_UNKNOWN_ROOT,
    HOP_KEY_SIZE,
    MAX_BLOB_SIZE,
    MAX_DURATION,
    MAX_HOST_LENGTH,
    MAX_ID_LENGTH,
    MAX_LIST_LENGTH,
    MAX_MESSAGE_SIZE,
    MAX_TEXT_LENGTH,
    MAX_TIME,
    MAX_TUNNEL_DATAGRAM,
    MESSAGE_ID_SIZE,
    NONCE_SIZE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    PROTOCOL_VERSION,
    RECEIPT_DELIVERED,
    RECEIPT_READ,
    RECEIPT_STORED,
    STATUS_AVAILABLE,
    STATUS_BUSY,
    STATUS_EMERGENCY,
    STATUS_EN_ROUTE,
    STATUS_OFFLINE,
    STATUS_ON_SCENE,
    STATUSES,
    U32,
    U63,
    Blob,
    ChannelId,
    ChannelInfo,
    Duration,
    HopKey,
    Host,
    Id,
    Interval,
    Label,
    Member,
    MessageId,
    Nonce,
    Port,
    Priority,
    ReceiptKind,
    RosterBlob,
    Status,
    Text,
    Time,
    TunnelDatagram,
    UserIds,
)
from ptt_protocol.errors import MalformedError, ProtocolError, UnsupportedVersionError

__all__ = [
    "ALERT_EMERGENCY",
    "ALERT_IMMINENT_PERIL",
    "CALL_FULL_DUPLEX",
    "CALL_HALF_DUPLEX",
    "CALL_MODES",
    "COMMENCEMENT_AUTOMATIC",
    "COMMENCEMENT_MANUAL",
    "END_BUSY",
    "END_FAILED",
    "END_FORBIDDEN",
    "END_HANGUP",
    "END_NO_ANSWER",
    "END_OFFLINE",
    "END_PEER_GONE",
    "END_PREEMPTED",
    "END_RATE_LIMITED",
    "END_REASONS",
    "END_REFUSED",
    "ERROR_AUTH_FAILED",
    "ERROR_BAD_MESSAGE",
    "ERROR_CODES",
    "ERROR_CREDENTIAL_EXPIRED",
    "ERROR_CREDENTIAL_REVOKED",
    "ERROR_FORBIDDEN",
    "ERROR_INTERNAL",
    "ERROR_LOGGED_IN_ELSEWHERE",
    "ERROR_NOT_FOUND",
    "ERROR_NOT_MEMBER",
    "ERROR_RATE_LIMITED",
    "ERROR_UNKNOWN_ROOT",
    "HOP_KEY_SIZE",
    "MAX_BLOB_SIZE",
    "MAX_DURATION",
    "MAX_HOST_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_JITTER_MS",
    "MAX_LIST_LENGTH",
    "MAX_LOSS_RUN",
    "MAX_MESSAGE_SIZE",
    "MAX_PATCHED",
    "MAX_TEXT_LENGTH",
    "MAX_TIME",
    "MAX_TUNNEL_DATAGRAM",
    "MESSAGE_ID_SIZE",
    "MESSAGE_TYPES",
    "NONCE_SIZE",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "PROTOCOL_VERSION",
    "RECEIPT_DELIVERED",
    "RECEIPT_READ",
    "RECEIPT_STORED",
    "STATUSES",
    "STATUS_AVAILABLE",
    "STATUS_BUSY",
    "STATUS_EMERGENCY",
    "STATUS_EN_ROUTE",
    "STATUS_OFFLINE",
    "STATUS_ON_SCENE",
    "U32",
    "U63",
    "Affiliate",
    "Affiliated",
    "Blob",
    "BroadcastRequest",
    "BurstInfo",
    "CallAnswer",
    "CallEnd",
    "CallIncoming",
    "CallLog",
    "CallLogRequest",
    "CallMode",
    "CallOffer",
    "CallRecord",
    "CallRinging",
    "CallTalk",
    "CallTalker",
    "ChannelCreate",
    "ChannelCreated",
    "ChannelDelete",
    "ChannelDeleted",
    "ChannelId",
    "ChannelInfo",
    "ChannelList",
    "Commencement",
    "CredentialRequest",
    "Credentials",
    "Deaffiliate",
    "Deaffiliated",
    "Directory",
    "DirectoryChannel",
    "DirectoryRequest",
    "DirectoryUser",
    "Duration",
    "EmergencyAck",
    "EmergencyAlert",
    "EmergencyCancel",
    "EndReason",
    "Enroll",
    "Enrolled",
    "EnrolledUser",
    "EnrolledUsers",
    "Error",
    "FloorDeny",
    "FloorGranted",
    "FloorIdle",
    "FloorQueuePosition",
    "FloorRelease",
    "FloorRequest",
    "FloorRevoke",
    "FloorTaken",
    "Goodbye",
    "Hello",
    "HopKey",
    "Host",
    "IceServer",
    "IceServers",
    "IceServersRequest",
    "Id",
    "Interval",
    "KeyEnvelope",
    "Label",
    "LinkReport",
    "LocationReport",
    "Login",
    "LoginOk",
    "MediaTunnel",
    "Member",
    "Message",
    "MessageId",
    "Nonce",
    "Patch",
    "Ping",
    "Pong",
    "Port",
    "PresenceSubscribe",
    "PresenceUpdate",
    "Priority",
    "RecallFrames",
    "RecallList",
    "RecalledFrame",
    "ReceiptKind",
    "ReceiverReport",
    "RevocationUpdate",
    "RosterBlob",
    "RosterUpdate",
    "SelectChannel",
    "SetStatus",
    "Status",
    "Text",
    "TextDeliver",
    "TextReceipt",
    "TextSend",
    "Time",
    "TunnelDatagram",
    "Unpatch",
    "UserIds",
    "decode",
    "encode",
    "mean_loss_run",
    "tag_of",
]

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
    | ChannelDelete
    | ChannelDeleted
    | Patch
    | Unpatch
    | RecallList
    | RecallFrames
    | FloorRequest
    | BroadcastRequest
    | FloorGranted
    | FloorDeny
    | FloorTaken
    | FloorIdle
    | FloorRelease
    | FloorRevoke
    | FloorQueuePosition
    | PresenceUpdate
    | PresenceSubscribe
    | EnrolledUsers
    | SetStatus
    | LocationReport
    | ReceiverReport
    | LinkReport
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
    | IceServersRequest
    | IceServers
    | CallOffer
    | CallIncoming
    | CallRinging
    | CallAnswer
    | CallEnd
    | CallTalk
    | CallTalker
    | CallLogRequest
    | CallLog
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
