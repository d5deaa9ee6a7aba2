"""Keys: credentials on request, signed rosters and key envelopes relayed (never opened).

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from crypto.epoch import read_envelope_header
from crypto.errors import CryptoError
from crypto.roster import RosterState, check_roster_signer, decode_signed_roster
from ptt_protocol import control
from ptt_server.channels import Channel
from ptt_server.cluster import news, reach
from ptt_server.handlers import initial
from ptt_server.policy import Refused
from ptt_server.sessions import (
    Session,
)
from ptt_server.store import KeyEnvelope as StoredEnvelope

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")

CREDENTIALS_CHUNK = 30
"""Credentials (about 1.4 KB each) per Credentials message."""


def envelope_message(envelope: StoredEnvelope) -> control.KeyEnvelope:
    return control.KeyEnvelope(
        channel_id=envelope.channel_id,
        epoch=envelope.epoch,
        recipient=envelope.recipient,
        envelope=envelope.envelope,
    )


def roster_message(channel: Channel) -> control.RosterUpdate:
    assert channel.signed_roster is not None
    return control.RosterUpdate(
        channel_id=channel.channel_id,
        version=channel.roster_version,
        signed_roster=channel.signed_roster,
    )


async def on_credential_request(
    server: RelayServer, session: Session, msg: control.CredentialRequest, now: float
) -> None:
    # One store call for the whole list, each user once (a list of 1,000 ids was 1,000
    # serial store calls on the one store thread).
    found = [user.credential for user in await server.store.get_users(msg.user_ids)]
    for start in range(0, max(len(found), 1), CREDENTIALS_CHUNK):
        session.send(
            control.Credentials(credentials=tuple(found[start : start + CREDENTIALS_CHUNK]))
        )


async def on_roster_update(
    server: RelayServer, session: Session, msg: control.RosterUpdate, now: float
) -> None:
    channel = server.channels.get(msg.channel_id)
    if channel is None:
        raise Refused(control.ERROR_NOT_FOUND, f"no channel {msg.channel_id}")
    probe = RosterState(msg.channel_id)
    try:
        roster = probe.accept(msg.signed_roster, server.trust, time.time())
    except CryptoError as exc:
        raise Refused(control.ERROR_FORBIDDEN, f"roster refused: {exc}") from None
    try:
        # A dispatcher changes only a channel it is on, judged against the roster in force
        # (whatever version the new one claims): else it could sign itself onto any channel
        # and key it (check_epoch_creator would then find it a member).
        held = server.rosters.get(msg.channel_id)
        signer = decode_signed_roster(msg.signed_roster)[1]
        check_roster_signer(signer, roster, held.current if held is not None else None)
    except CryptoError as exc:
        raise Refused(control.ERROR_FORBIDDEN, f"roster refused: {exc}") from None
    if roster.version <= channel.roster_version:
        raise Refused(
            control.ERROR_FORBIDDEN,
            f"roster version {roster.version} is not newer than {channel.roster_version}",
        )
    members = frozenset(m.user_id for m in roster.members)
    await server.store.put_roster(msg.channel_id, roster.version, msg.signed_roster, members)
    install_roster(server, channel, roster.version, msg.signed_roster, members)
    body = news.ChannelNews(
        channel_id=channel.channel_id, name=channel.name, signed_roster=msg.signed_roster
    )
    news.publish(server, news.CHANNEL, body)


async def on_key_envelope(
    server: RelayServer, session: Session, msg: control.KeyEnvelope, now: float
) -> None:
    try:
        header = read_envelope_header(msg.envelope)
    except CryptoError:
        raise Refused(control.ERROR_BAD_MESSAGE, "that is not a key envelope") from None
    if (header.channel_id, header.epoch, header.recipient) != (
        msg.channel_id,
        msg.epoch,
        msg.recipient,
    ):
        raise Refused(
            control.ERROR_BAD_MESSAGE,
            "the envelope is addressed otherwise than the message says",
        )
    if header.epoch != header.roster_version:
        # One numbering rule for every key manager: epoch N is made for roster version
        # N. Roster versions only go up and the server accepts each once, so two
        # dispatchers (or a dispatcher and ptt-admin) can never make two keys for one
        # epoch number.
        raise Refused(
            control.ERROR_BAD_MESSAGE,
            f"epoch {header.epoch} is not numbered after its roster version"
            f" {header.roster_version}: epoch N is made for roster version N",
        )
    channel = server.channels.get(msg.channel_id)
    if channel is None or msg.recipient not in channel.members:
        raise Refused(
            control.ERROR_NOT_MEMBER,
            f"{msg.recipient!r} is not on the roster of channel {msg.channel_id}",
        )
    if session.credential.fingerprint() != channel.roster_signer:
        raise Refused(
            control.ERROR_FORBIDDEN,
            f"the key of roster version {channel.roster_version} of channel"
            f" {msg.channel_id} comes from the one who signed that roster: publish your own"
            " roster first",
        )
    if header.roster_version != channel.roster_version:
        raise Refused(
            control.ERROR_FORBIDDEN,
            f"the envelope is for roster version {header.roster_version} of channel"
            f" {msg.channel_id}, whose roster is version {channel.roster_version}:"
            " publish the roster first (or someone else changed it: start again)",
        )
    await server.store.put_envelopes(
        msg.channel_id, msg.epoch, {msg.recipient: msg.envelope}, time.time()
    )
    # The sending dispatcher holds this key already, and may talk under it in a second.
    key_delivered(server, msg.channel_id, msg.epoch, publish=True)
    envelope = control.KeyEnvelope(
        channel_id=msg.channel_id,
        epoch=msg.epoch,
        recipient=msg.recipient,
        sender=session.user_id,
        envelope=msg.envelope,
    )
    reach.to_user(server, msg.recipient, envelope)


# --- channels and rosters as the relay holds them ---------------------------------------------


async def sync_channel(server: RelayServer, channel_id: int, name: str) -> Channel:
    channel = server.channels.get(channel_id)
    if channel is None:
        channel = Channel(
            channel_id,
            name,
            server._floor_config,
            server.sessions,
            server.store,
            server.metrics,
            server._spawn,
        )
        server.channels[channel_id] = channel
        server.rosters[channel_id] = RosterState(channel_id)
        if server.cluster is not None:
            server.cluster.floors.attach(channel)
    roster = await server.store.get_roster(channel_id)
    if roster is not None and roster.version > channel.roster_version:
        install_roster(server, channel, roster.version, roster.signed, roster.members)
        await push_envelopes(server, channel)
    return channel


def install_roster(
    server: RelayServer, channel: Channel, version: int, signed: bytes, members: frozenset[str]
) -> None:
    state = server.rosters[channel.channel_id]
    try:
        roster = state.accept(signed, server.trust, time.time())
    except CryptoError as exc:
        log.warning(
            "stored roster refused",
            extra={"fields": {"channel": channel.channel_id, "error": str(exc)}},
        )
        return
    removed = channel.members - members
    channel.members = members
    channel.roster_version = version
    channel.signed_roster = signed
    # Only whoever signed this roster hands out its epoch: two key managers rekeying at once
    # then cannot leave two keys for one epoch number (the second's roster is refused).
    channel.roster_signer = decode_signed_roster(signed)[1].fingerprint()
    # The relay's KID check: the verified roster's order is the members' sender indexes.
    channel.install_senders(roster)
    update = control.encode(roster_message(channel))
    now = server._loop_clock()
    for user in members | removed:
        session = server.sessions.by_user.get(user)
        if session is None:
            continue
        session.send(initial.channel_list(server, user))
        session.send_encoded(update)
        if user in removed and channel.channel_id in session.affiliated:
            channel.remove_listener(session, now)
            session.send(
                control.Deaffiliated(
                    channel_id=channel.channel_id, reason="removed from the channel roster"
                )
            )


async def push_envelopes(server: RelayServer, channel: Channel) -> None:
    for user in channel.members:
        session = server.sessions.by_user.get(user)
        if session is None:
            continue
        for envelope in await server.store.envelopes_for(user):
            if envelope.channel_id == channel.channel_id:
                session.send(envelope_message(envelope))
                key_delivered(server, envelope.channel_id, envelope.epoch)


def key_delivered(
    server: RelayServer, channel_id: int, epoch: int, *, publish: bool = False
) -> None:
    """An envelope of ``epoch`` went out: senders switch to it soon, so the relay's
    KID check keeps older epochs' sender indexes only for the rekey grace from now.

    ``publish``: a key manager just sent this epoch's envelope (not a login's catch-up):
    every node of a cluster starts the grace too, or the old KIDs would be accepted for
    ever on the nodes the envelope did not pass."""
    channel = server.channels.get(channel_id)
    if channel is not None:
        channel.key_delivered(epoch, server._loop_clock())
        if publish:
            delivered = news.KeyDeliveredNews(channel_id=channel_id, epoch=epoch)
            news.publish(server, news.KEY_DELIVERED, delivered)
