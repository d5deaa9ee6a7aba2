"""Patches (linked channels) and channel deletion.

A patch links channels through a patch channel whose roster holds all their members
(:class:`ptt_protocol.control.Patch`): the server checks the roster covers them, keeps the
links in the store (they outlive a restart), and tells every member and dispatcher. Radios
do the rest: they stay on their own channel and also listen and talk on the patch's.

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from crypto.errors import PatchError
from crypto.patch_order import verify_patch
from ptt_protocol import control
from ptt_server.channels import Channel
from ptt_server.cluster import news
from ptt_server.policy import Refused
from ptt_server.sessions import Session
from ptt_server.store import ConflictError, NotFoundError

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")


def audience(server: RelayServer, channel: Channel) -> set[Session]:
    """The channel's members' sessions and every dispatcher: who hears of its patch or end."""
    sessions = {
        s for user in channel.members if (s := server.sessions.by_user.get(user)) is not None
    }
    return sessions | server.dispatchers


def patch_of(server: RelayServer, channel_id: int) -> int | None:
    """The patch channel ``channel_id`` is linked through, or None."""
    for patch_id, patch in server.patches.items():
        if channel_id in patch.linked:
            return patch_id
    return None


def patches_for(server: RelayServer, session: Session) -> list[control.Patch]:
    """The active patches a session logging in is told of (as when they were made)."""
    found = []
    for patch_id, patch in sorted(server.patches.items()):
        channel = server.channels.get(patch_id)
        if channel is not None and (
            session.user_id in channel.members or session in server.dispatchers
        ):
            found.append(patch)
    return found


async def on_patch(server: RelayServer, session: Session, msg: control.Patch, now: float) -> None:
    """A new patch, or a console renewing the order of one (same channels, newer order)."""
    try:
        order, signer = verify_patch(msg.order, server.trust, time.time())
    except PatchError as exc:
        raise Refused(control.ERROR_FORBIDDEN, f"patch refused: {exc}") from None
    if signer.fingerprint() != session.credential.fingerprint():
        raise Refused(control.ERROR_FORBIDDEN, "patch refused: sign the order with this device")
    linked = tuple(sorted(order.linked))
    if order.patch_channel != msg.channel_id or set(linked) != set(msg.linked):
        raise Refused(control.ERROR_BAD_MESSAGE, "patch refused: the order names other channels")
    patch = server.channels.get(msg.channel_id)
    if patch is None:
        raise Refused(control.ERROR_NOT_FOUND, f"no channel {msg.channel_id}: create it first")
    involved = [patch]
    for channel_id in linked:
        channel = server.channels.get(channel_id)
        if channel is None:
            raise Refused(control.ERROR_NOT_FOUND, f"no channel {channel_id}")
        involved.append(channel)
    if any(session.user_id not in channel.members for channel in involved):
        # Radios follow only such an order; stored, another would be what radios logging
        # in are handed, and they would be left out of the patch.
        raise Refused(
            control.ERROR_NOT_MEMBER,
            "patch refused: only a dispatcher on every channel of a patch signs its order",
        )
    for channel_id, digest in zip(order.involved, order.rosters, strict=True):
        # Radios follow an order only for the rosters it names: keep none they would refuse.
        state = server.rosters.get(channel_id)
        if state is None or state.current is None or state.current.digest() != digest:
            raise Refused(
                control.ERROR_FORBIDDEN,
                f"patch refused: the order is for another roster of channel {channel_id} than"
                " its current one: sign it again",
            )
    members = {user for channel in involved[1:] for user in channel.members}
    outside = sorted(members - patch.members)
    if outside:
        raise Refused(
            control.ERROR_NOT_MEMBER,
            f"{outside[0]!r} is on a linked channel but not on {patch.name!r}: publish its"
            " roster with every linked channel's members first",
        )
    try:
        await server.store.put_patch(
            msg.channel_id, linked, msg.order, session.user_id, time.time()
        )
    except (ConflictError, NotFoundError) as exc:
        raise Refused(control.ERROR_FORBIDDEN, str(exc)) from None
    announced = control.Patch(
        channel_id=msg.channel_id, linked=linked, by_user=session.user_id, order=msg.order
    )
    log.info(
        "patched",
        extra={"fields": {"patch": msg.channel_id, "linked": linked, "by": session.user_id}},
    )
    install_patch(server, announced)
    body = news.PatchNews(channel_id=msg.channel_id, patch=control.encode(announced))
    news.publish(server, news.PATCH, body)


def install_patch(server: RelayServer, announced: control.Patch) -> None:
    """Hold a stored patch and tell this node's part of its audience."""
    server.patches[announced.channel_id] = announced
    patch = server.channels.get(announced.channel_id)
    if patch is not None:
        for target in audience(server, patch):
            target.send(announced)


async def on_unpatch(
    server: RelayServer, session: Session, msg: control.Unpatch, now: float
) -> None:
    if msg.channel_id not in server.patches:
        raise Refused(control.ERROR_NOT_FOUND, f"channel {msg.channel_id} is not a patch")
    await server.store.end_patch(msg.channel_id)
    log.info("unpatched", extra={"fields": {"patch": msg.channel_id, "by": session.user_id}})
    end_patch(server, msg.channel_id)
    news.publish(server, news.UNPATCH, news.PatchNews(channel_id=msg.channel_id))


def end_patch(server: RelayServer, channel_id: int) -> None:
    """Forget an ended patch and tell this node's part of its audience."""
    if server.patches.pop(channel_id, None) is None:
        return
    channel = server.channels.get(channel_id)
    if channel is not None:
        for target in audience(server, channel):
            target.send(control.Unpatch(channel_id=channel_id))


async def on_channel_delete(
    server: RelayServer, session: Session, msg: control.ChannelDelete, now: float
) -> None:
    channel = server.channels.get(msg.channel_id)
    if channel is None:
        raise Refused(control.ERROR_NOT_FOUND, f"no channel {msg.channel_id}")
    if msg.channel_id in server.patches or patch_of(server, msg.channel_id) is not None:
        raise Refused(
            control.ERROR_FORBIDDEN, f"{channel.name!r} is in a patch: end the patch first"
        )
    try:
        await server.store.delete_channel(msg.channel_id, time.time())
    except (ConflictError, NotFoundError) as exc:
        raise Refused(control.ERROR_FORBIDDEN, str(exc)) from None
    log.info(
        "channel deleted", extra={"fields": {"channel": msg.channel_id, "by": session.user_id}}
    )
    drop_channel(server, channel, session.user_id, now)
    body = news.ChannelDeletedNews(channel_id=msg.channel_id, by_user=session.user_id)
    news.publish(server, news.CHANNEL_DELETED, body)


def drop_channel(server: RelayServer, channel: Channel, by_user: str, now: float) -> None:
    """A deleted channel (gone from the store) leaves this node: listeners, floor, audience."""
    told = audience(server, channel)
    for listener in list(channel.listeners.values()):
        # Leaving ends its floor and queue like a disconnect (TS 24.380: the others see idle).
        channel.remove_listener(listener, now)
        listener.send(
            control.Deaffiliated(
                channel_id=channel.channel_id, reason=f"{channel.name} was deleted"
            )
        )
    channel.close()
    del server.channels[channel.channel_id]
    server.rosters.pop(channel.channel_id, None)
    server.metrics.channels.set(sum(1 for c in server.channels.values() if c.listeners))
    deleted = control.ChannelDeleted(
        channel_id=channel.channel_id, name=channel.name, by_user=by_user
    )
    for target in told:
        target.send(deleted)
