"""What the nodes of a cluster say to each other on the bus, and its subjects (no I/O).

Every message a node receives from NATS is decoded here, strictly: a node that publishes
garbage (a bug, an attacker on the bus network) gets its message refused as
:class:`BusMessageError` and counted, never crashes the node that reads it. Control
messages for radios travel inside these as the bytes :func:`ptt_protocol.control.encode`
made, checked by decoding them once on arrival, so what a radio receives is always a
message the protocol knows.

Media crosses nodes in a fixed binary layout (:func:`pack_media`): the talker's node
publishes each authenticated frame once per channel, and it must cost little to read.
Nothing here carries a key: media frames stay sealed end to end, as on one node.
"""

from __future__ import annotations

import struct
from typing import Annotated, Final, Literal

import msgspec

from ptt_protocol import control
from ptt_protocol.errors import ProtocolError

PREFIX: Final = "fieldradio"


class BusMessageError(ValueError):
    """A message on the bus that this node refuses (malformed, oversized, unknown)."""


def floor_subject(channel_id: int) -> str:
    """Floor requests to the channel's owner node (request/reply)."""
    return f"{PREFIX}.floor.{channel_id}"


def news_subject(channel_id: int) -> str:
    """The owner's floor news for the nodes with listeners of the channel."""
    return f"{PREFIX}.news.{channel_id}"


def media_subject(channel_id: int) -> str:
    """The channel's media, published once per frame by the talker's node."""
    return f"{PREFIX}.media.{channel_id}"


def user_subject(user_id: str) -> str:
    """Control messages for one user, read by the node the user is logged in on.

    User ids are protocol ``Id`` strings; NATS subject tokens may not hold spaces, dots or
    wildcards, so the id travels hex-encoded (unambiguous, and short enough for the bus).
    """
    return f"{PREFIX}.user.{user_id.encode().hex()}"


def call_subject(call_id: bytes) -> str:
    """What the callee's node says about a private call, to the call's owner (the caller's
    node) while the call lives (request/reply: no responder means the owner is gone)."""
    return f"{PREFIX}.call.{call_id.hex()}"


EVENTS_SUBJECT: Final = f"{PREFIX}.events"
"""Cluster-wide events (a roster changed, an emergency was raised...): every node reads them."""

HEARTBEAT_SUBJECT: Final = f"{PREFIX}.heartbeat"
"""Each node's :class:`Heartbeat`, every second: every node reads them (who is alive)."""

NodeName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Encoded = Annotated[bytes, msgspec.Meta(min_length=1, max_length=control.MAX_MESSAGE_SIZE)]
FloorAction = Literal["request", "release", "disconnect"]


class FloorOp(msgspec.Struct, frozen=True, kw_only=True, tag="floor-op"):
    """A radio's floor input on another node, for the owner's floor (a request/reply)."""

    action: FloorAction
    channel_id: control.ChannelId
    user_id: control.Id
    node: NodeName
    """The node the user is on (the owner ends its floors if that node dies)."""
    display_name: control.Text = ""
    priority: Annotated[int, msgspec.Meta(ge=1, le=4)] = 1
    broadcast: bool = False


class Trailing(msgspec.Struct, frozen=True, array_like=True):
    """The burst that just ended, still forwarded for a moment (its last frames)."""

    talker: control.Id
    burst_id: control.U32
    voice_for: Annotated[float, msgspec.Meta(ge=0, le=10)]
    """Seconds from now its voice frames are still forwarded."""
    statements_for: Annotated[float, msgspec.Meta(ge=0, le=10)]
    """Seconds from now its burst statements are still forwarded."""


class FloorNews(msgspec.Struct, frozen=True, kw_only=True, tag="floor-news"):
    """The owner's floor state of a channel, and the broadcasts for its listeners.

    Sent on every change and, while someone holds the floor, as the owner's heartbeat: a
    node that stops hearing it ends the burst for its own listeners (the owner died).
    """

    channel_id: control.ChannelId
    owner: NodeName
    sequence: Annotated[int, msgspec.Meta(ge=0)]
    """Per owner, increasing: a node drops news older than what it holds."""
    holder: control.Id | None = None
    burst_id: control.U32 | None = None
    taken: Encoded | None = None
    """The encoded FloorTaken of the burst in progress (for late entrants)."""
    trailing: Trailing | None = None
    broadcasts: tuple[tuple[Encoded, control.Id | None], ...] = ()
    """Encoded control messages for every listener but the second item (the talker)."""


class ToUser(msgspec.Struct, frozen=True, kw_only=True, tag="to-user"):
    """A control message for a user logged in on another node."""

    user_id: control.Id
    message: Encoded
    urgent: bool = False


class ClusterEvent(msgspec.Struct, frozen=True, kw_only=True, tag="event"):
    """Something every node must learn (a roster changed, an emergency was raised ...).

    ``kind`` names the handler (:mod:`ptt_server.cluster.events`); ``body`` is that
    handler's own msgspec payload, decoded and checked by it.
    """

    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    origin: NodeName
    body: Annotated[bytes, msgspec.Meta(max_length=control.MAX_MESSAGE_SIZE)] = b""


class CallRing(msgspec.Struct, frozen=True, kw_only=True, tag="call-ring"):
    """The owner of a call rings a callee logged in on another node (request/reply on the
    callee's user subject). The callee's node answers ``ringing``, ``busy`` or ``offline``."""

    owner: NodeName
    callee: control.Id
    incoming: Encoded
    """The encoded CallIncoming for the callee's radio."""


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat"):
    """``node`` is alive (:mod:`ptt_server.cluster.liveness`): a node silent for a while is
    dead, and its users are marked offline."""

    node: NodeName


CallRelayEnd = Literal["peer_gone", "preempted"]
"""Why a callee's node ends its side of a call (the callee's session ended, or an emergency
call to the callee pre-empted it)."""


class CallOp(msgspec.Struct, frozen=True, kw_only=True, tag="call-op"):
    """The callee's node to the owner of a call (request/reply on :func:`call_subject`):
    what the callee's radio sent (``message``), the node's own end of the call
    (``relay_end``), or neither: a probe (the owner is alive; the callee's node too). The
    owner answers ``ok``, or ``gone`` when it holds no such call."""

    call_id: control.MessageId
    user_id: control.Id | None = None
    """The callee (a node speaks only for its own user's side); None in the probe of a
    node sweeping the call log (is anyone still carrying this call?)."""
    message: Encoded | None = None
    relay_end: CallRelayEnd | None = None
    text: control.Text = ""


CALL_OP_MESSAGES: Final = (
    control.CallRinging,
    control.CallAnswer,
    control.CallEnd,
    control.CallTalk,
)
"""What a callee's radio may say about a call that another node owns."""


BusMessage = FloorOp | FloorNews | ToUser | ClusterEvent | CallRing | CallOp | Heartbeat

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(BusMessage)
MAX_BUS_MESSAGE: Final = 2 * control.MAX_MESSAGE_SIZE


def encode(message: BusMessage) -> bytes:
    return _ENCODER.encode(message)


def decode(data: bytes) -> BusMessage:
    """Decode and check one bus message; raises :class:`BusMessageError`."""
    if len(data) > MAX_BUS_MESSAGE:
        raise BusMessageError(f"bus message of {len(data)} bytes is over {MAX_BUS_MESSAGE}")
    try:
        message = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BusMessageError(f"malformed bus message: {exc}") from None
    if isinstance(message, FloorNews):
        for encoded, _ in message.broadcasts:
            check_control(encoded)
        if message.taken is not None and not isinstance(
            check_control(message.taken), control.FloorTaken
        ):
            raise BusMessageError("floor news whose taken message is not a FloorTaken")
    elif isinstance(message, ToUser):
        check_control(message.message)
    elif isinstance(message, CallRing):
        incoming = check_control(message.incoming)
        if not isinstance(incoming, control.CallIncoming):
            raise BusMessageError("a call ring whose message is not a CallIncoming")
    elif isinstance(message, CallOp):
        if message.user_id is None and (message.message or message.relay_end):
            raise BusMessageError("a call op that speaks for nobody")
        if message.message is not None:
            if message.relay_end is not None:
                raise BusMessageError("a call op with both a message and a relay end")
            inner = check_control(message.message)
            if not isinstance(inner, CALL_OP_MESSAGES):
                raise BusMessageError(f"a call op carrying a {type(inner).__name__}")
            if inner.call_id != message.call_id:
                raise BusMessageError("a call op whose message is about another call")
    return message


def call_op_message(op: CallOp) -> control.Message | None:
    """The radio's message inside a :class:`CallOp` that :func:`decode` checked."""
    return None if op.message is None else check_control(op.message)


def check_control(encoded: bytes) -> control.Message:
    """The control message inside a bus message (refused if the protocol does not know it)."""
    try:
        return control.decode(encoded)
    except ProtocolError as exc:
        raise BusMessageError(f"bus message carries a bad control message: {exc}") from None


# --- media ---------------------------------------------------------------------------------------

_MEDIA_HEADER: Final = struct.Struct("!BB")
"""Layout version, talker id length; then the talker id, then the inner frame (which names
its channel and burst itself)."""
MEDIA_VERSION: Final = 2


def pack_media(user_id: str, inner: bytes) -> bytes:
    """One authenticated inner frame (still sealed end to end) of ``user_id``'s."""
    user = user_id.encode()
    return _MEDIA_HEADER.pack(MEDIA_VERSION, len(user)) + user + inner


def unpack_media(data: bytes) -> tuple[str, bytes]:
    """(talker, inner frame); raises :class:`BusMessageError`."""
    size = _MEDIA_HEADER.size
    if len(data) <= size:
        raise BusMessageError(f"media message of {len(data)} bytes is too short")
    version, user_length = _MEDIA_HEADER.unpack_from(data)
    if version != MEDIA_VERSION:
        raise BusMessageError(f"media message layout {version} is not {MEDIA_VERSION}")
    end = size + user_length
    if not 0 < user_length <= control.MAX_ID_LENGTH or len(data) <= end:
        raise BusMessageError("media message with a bad talker id length")
    try:
        user = data[size:end].decode()
    except UnicodeDecodeError:
        raise BusMessageError("media message whose talker id is not UTF-8") from None
    return user, data[end:]
