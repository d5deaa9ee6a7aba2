"""The bodies of the cluster's events (:meth:`ClusterNode.publish_event`), and their kinds.

A node that changed something every node must act on (it stored a roster, raised an
alert, saw a login) publishes one of these; :mod:`ptt_server.cluster.events` runs the
other nodes' side. The store stays the truth: an event says what changed, and carries
what the other nodes tell their own sessions (encoded control messages, checked on
arrival like every bus message) or the signed object they verify themselves against the
pinned org root (a roster, a revocation list), so a forged event can change nothing a
signature does not allow.

No I/O here: publishing is :func:`publish`, a no-op on one node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final, TypeVar

import msgspec

from ptt_protocol import control
from ptt_server.cluster import wire

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

EMERGENCY: Final = "emergency"
CHANNEL: Final = "channel"
CHANNEL_DELETED: Final = "channel-deleted"
PATCH: Final = "patch"
UNPATCH: Final = "unpatch"
REVOCATIONS: Final = "revocations"
PRESENCE: Final = "presence"
LOGIN: Final = "login"
KEY_DELIVERED: Final = "key-delivered"
ENROLLED: Final = "enrolled"
NODE_DOWN: Final = "node-down"

Signed = Annotated[bytes, msgspec.Meta(min_length=1, max_length=control.MAX_MESSAGE_SIZE)]


class EmergencyNews(msgspec.Struct, frozen=True, kw_only=True):
    """An alert went out (with its ack, if any), was acknowledged, or was cancelled."""

    raiser: control.Id
    channel_id: control.ChannelId | None = None
    messages: Annotated[tuple[wire.Encoded, ...], msgspec.Meta(min_length=1, max_length=2)]


class ChannelNews(msgspec.Struct, frozen=True, kw_only=True):
    """A channel was created, or its roster changed (``signed_roster``, as stored)."""

    channel_id: control.ChannelId
    name: control.Text
    signed_roster: Signed | None = None


class ChannelDeletedNews(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: control.ChannelId
    by_user: control.Id


class PatchNews(msgspec.Struct, frozen=True, kw_only=True):
    """A patch made or renewed (``patch``: the encoded Patch as announced), or ended."""

    channel_id: control.ChannelId
    patch: wire.Encoded | None = None


class RevocationNews(msgspec.Struct, frozen=True, kw_only=True):
    signed_list: Signed


class PresenceNews(msgspec.Struct, frozen=True, kw_only=True):
    """A user's presence changed; ``update`` is the encoded PresenceUpdate for consoles."""

    update: wire.Encoded


class LoginNews(msgspec.Struct, frozen=True, kw_only=True):
    """``user_id`` logged in on ``node`` with the device of ``fingerprint``."""

    user_id: control.Id
    fingerprint: Annotated[bytes, msgspec.Meta(min_length=1, max_length=64)]
    node: wire.NodeName
    at: float
    """Unix time of that login: news that arrives late (A, then B, then A again) never ends
    a session that logged in after it."""


class NodeDownNews(msgspec.Struct, frozen=True, kw_only=True):
    """``node`` fell silent and its users were marked offline: if it is alive after all
    (its bus link flapped), it stores its own users online again."""

    node: wire.NodeName


class EnrolledNews(msgspec.Struct, frozen=True, kw_only=True):
    """``user_id`` was enrolled again (a new device): each node checks the store for it."""

    user_id: control.Id


class KeyDeliveredNews(msgspec.Struct, frozen=True, kw_only=True):
    """An envelope of ``epoch`` went out: every node's KID check starts the older epochs'
    grace from now, as the sender's node does."""

    channel_id: control.ChannelId
    epoch: control.U32


B = TypeVar("B", bound=msgspec.Struct)
M = TypeVar("M")
_ENCODER: Final = msgspec.msgpack.Encoder()


def publish(server: RelayServer, kind: str, body: msgspec.Struct) -> None:
    """Tell the other nodes (nothing on one node)."""
    if server.cluster is not None:
        server.cluster.publish_event(kind, _ENCODER.encode(body))


def decode(body: bytes, kind: type[B]) -> B:
    """Decode and check an event's body; raises :class:`wire.BusMessageError`."""
    try:
        return msgspec.msgpack.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise wire.BusMessageError(f"malformed {kind.__name__}: {exc}") from None


def control_of(encoded: bytes, kind: type[M]) -> M:
    """The control message inside an event, refused unless it is a ``kind``."""
    message = wire.check_control(encoded)
    if not isinstance(message, kind):
        raise wire.BusMessageError(
            f"event carries a {type(message).__name__}, not a {kind.__name__}"
        )
    return message


MOVED: Final = "logged in on another node of the cluster"
"""The closing reason of a session whose radio logged in on another node (same device)."""
REPLACED_ELSEWHERE: Final = "logged in from another device on another node"
"""The closing reason of a session whose user logged in on another node from another
device (that node stored the user online: this one must not store it offline after)."""
