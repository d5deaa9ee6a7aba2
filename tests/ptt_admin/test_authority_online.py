"""The org authority over the control plane, against a real relay and real radios.

Each test tries to break a promise of issue 9 part 1 or issue 11 part 1: the relay's
operator holds no key, the authority's changes apply at once, radios show and check
who made an epoch, and a lost or replaced device loses its keys.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.errors import CryptoError
from crypto.identity import OrgRoot, Role
from crypto.keyring import DEFAULT_SWITCH_DELAY
from crypto.roster import Member
from ptt_admin import channels, people
from ptt_admin.authority import AdminError
from ptt_admin.session import connect
from ptt_client import channel_admin, events
from ptt_client.audio import WavFileInput
from ptt_client.client import RadioClient
from ptt_client.voice import Transmitter
from ptt_protocol import control
from tests.credentials import issue
from tests.tui.org import Field, keys_for, online, open_field, recorded, stop

SAMPLES = Path(__file__).resolve().parents[2] / "ptt_client" / "samples"


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


def _secrets_of(field: Field) -> list[bytes]:
    """The raw private key bytes the org authority holds (root and admin device)."""
    authority = field.authority
    root_raw = authority.root._key.private_bytes_raw()
    admin = authority.admin_keys
    return [root_raw, admin._signing.private_bytes_raw(), admin._x25519.private_bytes_raw()]


async def test_the_relay_data_directory_holds_no_private_key_of_the_authority(
    field: Field, tmp_path: Path
) -> None:
    # A day's administration: enrol, re-enrol, create, change, rekey, revoke.
    async with connect(field.authority) as session:
        now = time.time()
        await people.enroll(session, "dave", role=Role.OFFICER, display_name="Dave", now=now)
        await people.enroll(session, "bob", role=Role.OFFICER, display_name="Bob B.", now=now)
        await channels.create(session, "night", ["alice", "dave"], now=now)
        await channels.change_members(session, "patrol", add=["dave"], now=now)
        await channels.rekey(session, "traffic", now=now)
        await people.revoke(session, "dave", now=now)
    secrets = _secrets_of(field)
    relay_files = [p for p in (tmp_path / "relay").rglob("*") if p.is_file()]
    assert any(p.name == "fieldradio.db" for p in relay_files)
    for path in relay_files:
        data = path.read_bytes()  # database, WAL, TLS pair, root.pub
        for secret in secrets:
            assert secret not in data, f"{path} holds a private key of the org authority"
    # And the relay refuses to start if someone puts the authority's key there.
    assert (field.authority.files.root_key).read_bytes() not in b"".join(
        p.read_bytes() for p in relay_files
    )


async def test_a_removed_member_is_cut_off_when_the_command_returns(field: Field) -> None:
    disp, bob = await online(field, "disp", "bob")
    try:
        patrol = field.channels["patrol"]
        await bob.affiliate(patrol)
        await bob.ping_server()
        assert bob.session_index in field.server.channels[patrol].listeners
        async with connect(field.authority) as session:
            change = await channels.change_members(
                session, "patrol", remove=["bob"], now=time.time()
            )
            # No polling window: the relay applied the roster before it answered.
            assert "bob" not in field.server.channels[patrol].members
            assert bob.session_index not in field.server.channels[patrol].listeners
        assert change.epoch == 2 and change.members == ("disp", "alice")
        gone = await bob.wait_for(control.Deaffiliated, lambda m: m.channel_id == patrol)
        assert "roster" in gone.reason
    finally:
        await stop(disp, bob)


async def test_radios_show_who_made_each_epoch(field: Field) -> None:
    (alice,) = await online(field, "alice")
    try:
        patrol = field.channels["patrol"]
        await alice.affiliate(patrol)
        async with connect(field.authority) as session:
            await channels.rekey(session, "patrol", now=time.time())
        installed = await alice.wait_for(
            events.EpochInstalled, lambda e: e.channel_id == patrol and e.epoch == 2
        )
        assert installed.creator == "admin"
        assert installed.creator_name == "Administrator"
        assert installed.creator_role == "admin"
    finally:
        await stop(alice)


async def test_a_dispatcher_off_the_roster_cannot_slip_in_a_key(field: Field) -> None:
    """A dispatcher who is not on a channel signs a roster that leaves it off and makes the
    epoch: the relay refuses the roster (a dispatcher changes only a channel it is on) and
    the radios keep the key they hold. A relay that forwarded the envelope anyway is
    refused by the radios (tests/ptt_client/test_keyring_epochs.py)."""
    async with connect(field.authority) as session:
        rogue_enrolment = await people.enroll(
            session, "rogue", role=Role.DISPATCHER, display_name="Rogue", now=time.time()
        )
    bundle = rogue_enrolment.bundle
    rogue = RadioClient(bundle, bundle.open_keys(None), server_url=field.url)
    (alice,) = await online(field, "alice")
    await rogue.start()
    try:
        await rogue.wait_connected()
        patrol = field.channels["patrol"]
        await alice.affiliate(patrol)
        await alice.ping_server()
        before = alice.keyring.epoch_key(patrol)
        assert before.epoch == 1
        members = channel_admin.current_members(alice, patrol)
        assert "rogue" not in members
        with pytest.raises(channel_admin.ChannelAdminError, match="not on its roster"):
            await channel_admin.publish_roster(rogue, patrol, members, 1)
        await alice.ping_server()
        assert alice.keyring.epoch_key(patrol) == before
        assert 2 not in alice.keyring.channels[patrol].epochs
        assert field.server.channels[patrol].roster_version == 1
    finally:
        await stop(alice, rogue)


async def test_revoking_a_lost_phone_takes_its_keys_away(field: Field) -> None:
    """After `ptt-admin revoke bob`, what bob's phone held (its device keys and every epoch
    key it had) opens no frame and no text of the new epoch (issue 11, part 1)."""
    patrol = field.channels["patrol"]
    skew = [0.0]
    alice = field.client("alice", clock=lambda: time.time() + skew[0])
    await alice.start()
    disp, bob = await online(field, "disp", "bob")
    await alice.wait_connected()
    try:
        for client in (alice, disp, bob):
            await client.affiliate(patrol)
            await client.ping_server()
        assert bob.keyring.epoch_key(patrol).epoch == 1
        async with connect(field.authority) as session:
            result = await people.revoke(session, "bob", now=time.time())
        assert [c.name for c in result.rekeyed] == ["patrol"]
        assert result.rekeyed[0].members == ("disp", "alice")
        refused = await bob.wait_for(events.LoginRefused)
        assert refused.code == control.ERROR_CREDENTIAL_REVOKED
        await keys_for(alice, patrol, 2)
        await keys_for(disp, patrol, 2)
        # Alice talks and texts under the new epoch (her clock past the sender switch).
        skew[0] = 2 * DEFAULT_SWITCH_DELAY
        talk = await Transmitter(alice).talk(
            WavFileInput(SAMPLES / "medical.wav"), channel_id=patrol, duration=0.4
        )
        assert talk.outcome == "granted" and talk.frames_sent == 20
        text_id = await alice.send_text("only for the new epoch", to_channel=patrol)
        deliver = await disp.wait_for(control.TextDeliver, lambda m: m.message_id == text_id)
        burst = await recorded(disp, patrol, "alice", 20)
        frames = await channel_admin.recall_frames(disp, patrol, burst.burst_key)
        assert len(channel_admin.open_recalled(disp, patrol, burst, frames).opus) == 20
        # The thief's copy of bob's phone: its keyring, with its device keys and epoch 1.
        stolen = channel_admin.open_recalled(bob, patrol, burst, frames)
        assert stolen.opus == () and stolen.refused == 20
        with pytest.raises(CryptoError):
            bob.keyring.open_text(deliver, alice.credential)
        # No envelope the relay holds for the new epoch opens with bob's device keys, even
        # with the new (public) roster in hand.
        signed_roster = field.server.channels[patrol].signed_roster
        assert signed_roster is not None
        bob.keyring.accept_roster(patrol, signed_roster, time.time())
        for user in ("alice", "disp"):
            for envelope in await field.server.store.envelopes_for(user):
                if envelope.channel_id == patrol:
                    assert envelope.epoch == 2
                    found = bob.keyring.accept_envelope(patrol, envelope.envelope, time.time())
                    assert [type(e) for e in found] == [events.EpochRefused]
        assert 2 not in bob.keyring.channels[patrol].epochs
    finally:
        await stop(alice, disp, bob)


async def test_re_enrolling_replaces_the_device_and_rekeys_its_channels(field: Field) -> None:
    (bob,) = await online(field, "bob")
    try:
        async with connect(field.authority) as session:
            result = await people.enroll(
                session, "bob", role=Role.OFFICER, display_name="Bob Brown", now=time.time()
            )
        assert result.replaced_device == field.bundles["bob"].decoded_credential().device_id
        assert [c.name for c in result.rekeyed] == ["patrol"]
        cut = await bob.wait_for(control.Error)
        assert "replaced" in cut.text
        refused = await bob.wait_for(events.LoginRefused)
        assert refused.code == control.ERROR_AUTH_FAILED
    finally:
        await stop(bob)
    new_bob = RadioClient(result.bundle, result.bundle.open_keys(None), server_url=field.url)
    await new_bob.start()
    try:
        await new_bob.wait_connected()
        roster = None
        while roster is None or roster.version < 2:
            await new_bob.wait_for(events.KeysUpdated)
            roster = new_bob.keyring.channels[field.channels["patrol"]].roster
        member = roster.member("bob")
        assert member is not None
        assert member.credential_fingerprint == result.credential.fingerprint()
        assert Member.from_credential(result.credential) == member
    finally:
        await new_bob.stop()


async def test_only_the_authority_may_enroll_revoke_or_read_the_directory(field: Field) -> None:
    (disp,) = await online(field, "disp")
    try:
        forged = field.bundles["alice"].credential
        for message in (
            control.Enroll(credential=forged),
            control.RevocationUpdate(signed_list=b"\x01" * 40),
            control.DirectoryRequest(),
        ):
            await disp.send_message(message)
            error = await disp.wait_for(control.Error)
            assert error.code == control.ERROR_FORBIDDEN
            assert "org authority" in error.text
    finally:
        await stop(disp)


async def test_the_relay_refuses_objects_the_root_did_not_sign(field: Field) -> None:
    other_root = OrgRoot.generate()
    now = time.time()
    _, stranger = issue(other_root, "mallory", serial=7, now=now)
    foreign_list = other_root.sign_revocations(version=9, issued_at=int(now), serials=[1])
    async with connect(field.authority) as session:
        with pytest.raises(AdminError, match="credential refused"):
            await session.ask(
                lambda e: e if isinstance(e, control.Enrolled | control.Error) else None,
                [control.Enroll(credential=stranger.to_bytes())],
                "the enrolment",
            )
        with pytest.raises(AdminError, match="revocation list refused"):
            await session.send_checked(
                [control.RevocationUpdate(signed_list=foreign_list.to_bytes())], "the list"
            )
        users = (await session.directory(now)).users
    assert "mallory" not in users
    assert field.server.trust.revocations is None
