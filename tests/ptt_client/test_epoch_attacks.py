"""Epoch keys a relay hands a radio on behalf of a dispatcher who may no longer key the channel.

The honest relay refuses any envelope whose epoch is not its roster version, or that is
not for the channel's current roster (``ptt_server.server._on_key_envelope``). A relay
that helps a dispatcher does not: the radio itself must not let an epoch made for an
old roster (one that still listed that dispatcher) become the key it talks under, nor
let a key numbered far ahead make every later, honest rekey "too old to matter".
Real relay, real radios, real admin commands; the relay's help is
:func:`tests.ptt_client.relay_adversary.relay_says`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from crypto import epoch as epoch_module
from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.roster import Roster
from ptt_admin import channels
from ptt_admin.session import connect
from ptt_client import channel_admin, events
from ptt_client.client import RadioClient
from ptt_protocol import control
from tests.ptt_client.relay_adversary import handled, of, relay_says
from tests.tui.org import Field, keys_for, online, open_field, stop


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


def envelope_from(
    dispatcher: RadioClient, roster: Roster, epoch: int, recipient: str
) -> tuple[bytes, bytes]:
    """An epoch key ``dispatcher`` makes for ``roster`` numbered ``epoch``, and its envelope
    for ``recipient``; returns (secret, envelope)."""
    key = new_epoch_key(roster.channel_id, epoch, roster.version)
    credentials = {m.user_id: dispatcher.keyring.credentials[m.user_id] for m in roster.members}
    envelopes = wrap_epoch(
        key,
        roster,
        credentials,
        dispatcher.keys,
        dispatcher.credential,
        trust=dispatcher.keyring.trust,
        now=time.time(),
    )
    return key.secret, envelopes[recipient]


async def members_known(client: RadioClient, channel_id: int) -> None:
    while client.keyring.unknown_members(channel_id):
        client.keyring.credentials_changed.clear()
        await client.keyring.credentials_changed.wait()


async def test_a_dispatcher_taken_off_a_channel_cannot_key_it_with_its_old_roster(
    field: Field,
) -> None:
    """`ptt-admin channel remove patrol disp` (roster 2, epoch 2). disp is still a valid
    dispatcher and still holds roster 1, which lists it: it makes epoch 3 for roster 1 and
    the relay hands it to alice. Alice must keep epoch 2 (else she talks under a key disp
    made, 1 s later)."""
    patrol = field.channels["patrol"]
    disp, alice = await online(field, "disp", "alice")
    try:
        await members_known(disp, patrol)
        await alice.affiliate(patrol)
        await alice.ping_server()
        old_roster = disp.keyring.channels[patrol].rosters[1]
        assert old_roster.member("disp") is not None
        async with connect(field.authority) as session:
            await channels.change_members(session, "patrol", remove=["disp"], now=time.time())
        await keys_for(alice, patrol, 2)
        secret, envelope = envelope_from(disp, old_roster, 3, "alice")
        handled_before = await handled(alice)
        assert of(events.EpochInstalled, handled_before)  # epoch 2, from the admin
        relay_says(
            field.server,
            "alice",
            control.KeyEnvelope(channel_id=patrol, epoch=3, recipient="alice", envelope=envelope),
        )
        reported = await handled(alice)
        keys = alice.keyring.channels[patrol]
        assert 3 not in keys.epochs, "alice took an epoch key from a dispatcher off her roster"
        assert keys.current_epoch == 2
        assert alice.keyring.epoch_key(patrol).secret != secret
        assert [e.epoch for e in of(events.EpochRefused, reported)] == [3]
    finally:
        await stop(disp, alice)


async def test_a_key_numbered_far_ahead_cannot_outlive_the_next_rekey(field: Field) -> None:
    """While disp is on patrol (roster 1), the relay helps it hand alice epoch 2**32-1 made
    for roster 1. Then `ptt-admin channel remove patrol disp` (roster 2, epoch 2): alice
    must talk under the admin's epoch 2, not keep disp's key because its number is higher."""
    patrol = field.channels["patrol"]
    disp, alice = await online(field, "disp", "alice")
    try:
        await members_known(disp, patrol)
        await alice.affiliate(patrol)
        await alice.ping_server()
        roster = disp.keyring.channels[patrol].rosters[1]
        far = 2**32 - 1
        secret, envelope = envelope_from(disp, roster, far, "alice")
        relay_says(
            field.server,
            "alice",
            control.KeyEnvelope(channel_id=patrol, epoch=far, recipient="alice", envelope=envelope),
        )
        await handled(alice)
        async with connect(field.authority) as session:
            change = await channels.change_members(
                session, "patrol", remove=["disp"], now=time.time()
            )
        assert change.epoch == 2
        await alice.ping_server()  # the relay sent alice her envelope before this Pong
        current = alice.keyring.epoch_key(patrol)
        assert current.secret != secret, "alice still talks under the key disp made"
        assert current.epoch == 2
    finally:
        await stop(disp, alice)


async def test_a_refused_envelope_does_not_name_a_creator_it_did_not_verify(field: Field) -> None:
    """The relay takes the admin's envelope for alice and swaps in disp's (public)
    credential as its creator. The signature no longer verifies and alice refuses it, but
    her warning ("key epoch 1 for patrol from disp refused") must not blame disp, whom
    nothing proves made it."""
    patrol = field.channels["patrol"]
    (alice,) = await online(field, "alice")
    try:
        await alice.affiliate(patrol)
        await alice.ping_server()
        stored = [
            e for e in await field.server.store.envelopes_for("alice") if e.channel_id == patrol
        ]
        genuine = stored[-1].envelope
        sealed = epoch_module._ENVELOPE_DECODER.decode(genuine[1:])
        disp_credential = field.bundles["disp"].credential
        forged = genuine[:1] + msgspec.msgpack.encode(
            msgspec.structs.replace(sealed, creator_credential=disp_credential)
        )
        await handled(alice)
        relay_says(
            field.server,
            "alice",
            control.KeyEnvelope(
                channel_id=patrol, epoch=stored[-1].epoch, recipient="alice", envelope=forged
            ),
        )
        refused = of(events.EpochRefused, await handled(alice))
        assert len(refused) == 1
        assert "signature" in refused[0].reason
        assert refused[0].creator != "disp", "the radio blames disp for an envelope disp never made"
    finally:
        await stop(alice)


async def test_two_key_managers_rekeying_at_once_give_every_member_the_same_key(
    field: Field,
) -> None:
    """`ptt-admin channel rekey patrol` and disp's console rekey patrol at the same moment,
    both from roster 1. The relay accepts the admin's roster 2 and refuses disp's, but
    disp's envelopes (epoch 2, roster version 2: the current one) must not replace the
    admin's: bob, offline meanwhile, must get the same epoch-2 key as alice, or the two
    cannot hear each other."""
    patrol = field.channels["patrol"]
    disp, alice = await online(field, "disp", "alice")
    try:
        await members_known(disp, patrol)
        await alice.affiliate(patrol)
        await alice.ping_server()
        async with connect(field.authority) as session:
            await channels.rekey(session, "patrol", now=time.time())
        with pytest.raises(channel_admin.ChannelAdminError, match="not newer"):
            await channel_admin.publish_roster(disp, patrol, ["disp", "alice", "bob"], 1)
        await keys_for(alice, patrol, 2)
        (bob,) = await online(field, "bob")
        try:
            await keys_for(bob, patrol, 2)
            assert bob.keyring.epoch_key(patrol).secret == alice.keyring.epoch_key(patrol).secret, (
                "bob and alice hold two different keys for epoch 2"
            )
        finally:
            await stop(bob)
    finally:
        await stop(disp, alice)
