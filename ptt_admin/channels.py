"""Channels as the org authority changes them: signed rosters and new epochs, sent to the relay.

The authority is not on the channels it keys (it signs the roster and wraps the
epoch for every member, and keeps nothing): members see in their event stream that
the admin made the epoch. Every change signs roster version + 1 and makes the epoch
of the same number (:func:`ptt_client.channel_admin.publish_roster`, the rule the
console follows too); a removed member gets no envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crypto.roster import MAX_MEMBERS
from ptt_admin.authority import PROG, AdminError, check_id
from ptt_admin.ledger import Ledger
from ptt_admin.session import AdminSession, ChannelEntry, Directory
from ptt_client.channel_admin import (
    ChannelAdminError,
    create_channel,
    delete_channel,
    publish_roster,
)

MAX_CHANNEL_NAME = 64
"""Same cap as an id in the control protocol."""


@dataclass(frozen=True, slots=True)
class ChannelChange:
    """What a channel command did."""

    channel_id: int
    name: str
    epoch: int
    """The new epoch (= roster version)."""
    members: tuple[str, ...]
    """Members in roster order (= SFrame sender index)."""


def check_channel_name(name: str) -> str:
    if not name or len(name) > MAX_CHANNEL_NAME or not name.isprintable() or name != name.strip():
        raise AdminError(
            f"channel name {name!r} is not allowed: give 1-{MAX_CHANNEL_NAME} printable"
            " characters without leading or trailing spaces"
        )
    return name


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_members(directory: Directory, channel: str, wanted: Sequence[str], now: float) -> None:
    if len(wanted) > MAX_MEMBERS:
        raise AdminError(f"a channel holds at most {MAX_MEMBERS} members, not {len(wanted)}")
    for user_id in wanted:
        entry = directory.user(user_id)
        if entry is None:
            raise AdminError(
                f"no user {user_id!r}: enroll it first with `{PROG} enroll {user_id} --role"
                " officer --name ...`"
            )
        if entry.revoked:
            raise AdminError(f"cannot give {user_id!r} the key of {channel!r}: it is revoked")
        if now >= entry.credential.not_after:
            raise AdminError(
                f"cannot give {user_id!r} the key of {channel!r}: its credential expired;"
                f" re-enroll with `{PROG} enroll {user_id}`"
            )


async def create(
    session: AdminSession, name: str, members: Sequence[str], *, now: float
) -> ChannelChange:
    """Create channel ``name`` with roster version 1 and epoch 1 for ``members``."""
    check_channel_name(name)
    wanted = _unique([check_id("user id", m) for m in members])
    directory = await session.directory(now)
    if name in directory.channels:
        raise AdminError(
            f"channel {name!r} exists already: change its members with `{PROG} channel add"
            f" {name} USER...`"
        )
    _check_members(directory, name, wanted, now)
    try:
        channel_id = await create_channel(session.client, name, wanted, include_self=False)
    except ChannelAdminError as exc:
        raise AdminError(str(exc)) from None
    ledger = Ledger.load(session.authority.files.directory)
    ledger.channels[name] = channel_id
    ledger.rosters[channel_id] = 1
    ledger.save()
    return ChannelChange(channel_id, name, 1, tuple(wanted))


async def republish(
    session: AdminSession, channel: ChannelEntry, members: Sequence[str]
) -> ChannelChange:
    """A new roster (version + 1) with ``members`` in this order, and its epoch."""
    try:
        epoch = await publish_roster(session.client, channel.channel_id, members, channel.version)
    except ChannelAdminError as exc:
        raise AdminError(str(exc)) from None
    ledger = Ledger.load(session.authority.files.directory)
    ledger.channels.setdefault(channel.name, channel.channel_id)
    ledger.rosters[channel.channel_id] = epoch
    ledger.save()
    return ChannelChange(channel.channel_id, channel.name, epoch, tuple(members))


async def change_members(
    session: AdminSession,
    name: str,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    now: float,
) -> ChannelChange:
    """Add and/or remove members of ``name``: roster version + 1 and a new epoch.

    Continuing members keep their order (and sender index), added ones go last. With
    nothing to add or remove this is a plain rekey, which also picks up re-enrolled
    devices. Raises :class:`AdminError` and changes nothing on bad input.
    """
    check_channel_name(name)
    adding = _unique([check_id("user id", u) for u in add])
    removing = _unique(remove)
    both = set(adding) & set(removing)
    if both:
        raise AdminError(f"{sorted(both)[0]!r} is both added and removed: give it once")
    directory = await session.directory(now)
    channel = directory.channel(name)
    old = list(channel.members)
    for user in adding:
        if user in old:
            raise AdminError(
                f"{user!r} is on channel {name!r} already (to pick up a re-enrolled device"
                f" run `{PROG} channel rekey {name}`)"
            )
    for user in removing:
        if user not in old:
            raise AdminError(
                f"{user!r} is not on channel {name!r}: `{PROG} channel list` shows members"
            )
    wanted = [u for u in old if u not in removing] + adding
    _check_members(directory, name, wanted, now)
    return await republish(session, channel, wanted)


async def rekey(session: AdminSession, name: str, *, now: float) -> ChannelChange:
    """Same members (with their current devices), new epoch."""
    return await change_members(session, name, now=now)


async def delete(session: AdminSession, name: str, *, now: float) -> int:
    """Delete channel ``name`` on the relay (its members' radios leave it); returns its id."""
    channel = (await session.directory(now)).channel(check_channel_name(name))
    try:
        await delete_channel(session.client, channel.channel_id)
    except ChannelAdminError as exc:
        raise AdminError(str(exc)) from None
    ledger = Ledger.load(session.authority.files.directory)
    # The name may be used again; the id never is (the relay does not hand it out twice).
    ledger.channels.pop(name, None)
    ledger.save()
    return channel.channel_id


async def list_channels(session: AdminSession, *, now: float) -> list[ChannelEntry]:
    """Every channel with its verified roster, by id."""
    directory = await session.directory(now)
    return sorted(directory.channels.values(), key=lambda c: c.channel_id)
