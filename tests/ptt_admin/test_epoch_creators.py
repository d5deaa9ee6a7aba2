"""Who may put themselves on a channel and key it (issue 9 part 1, a judge's variants).

A dispatcher may only key a channel it is a member of (crypto.epoch.check_epoch_creator).
That rule is empty if the same dispatcher may sign the roster that makes it a member:
these tests try exactly that, through a real relay and real radios, and directly on a
radio's keyring (what a relay that forwards the roster anyway would get).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import OrgRoot, Role
from crypto.roster import Member, Roster, sign_roster
from ptt_admin import channels, people
from ptt_admin.session import connect
from ptt_client import channel_admin, events
from ptt_client.client import RadioClient
from ptt_client.e2e import Keyring
from ptt_protocol import control
from tests.credentials import Issued, bundle_for, issue
from tests.tui.org import Field, online, open_field, stop

T0 = 1_900_000_000.0
ROOT = OrgRoot.generate()
CHANNEL = 21
DISP = issue(ROOT, "disp", Role.DISPATCHER, serial=1, now=T0)
ALICE = issue(ROOT, "alice", serial=2, now=T0)
OUTSIDER = issue(ROOT, "outsider", Role.DISPATCHER, serial=3, now=T0)
AUTHORITY = issue(ROOT, "admin", Role.ADMIN, serial=4, now=T0)


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


async def test_a_dispatcher_of_another_channel_cannot_put_itself_on_a_channel_and_key_it(
    field: Field,
) -> None:
    """d.harbour dispatches another channel; it signs patrol's next roster with itself on
    it and keys it. The relay refuses the roster, and alice keeps the key she holds."""
    async with connect(field.authority) as session:
        enrolled = await people.enroll(
            session, "harbour", role=Role.DISPATCHER, display_name="H", now=time.time()
        )
        await channels.create(session, "harbour", ["harbour"], now=time.time())
    bundle = enrolled.bundle
    intruder = RadioClient(bundle, bundle.open_keys(None), server_url=field.url)
    (alice,) = await online(field, "alice")
    await intruder.start()
    try:
        await intruder.wait_connected()
        patrol = field.channels["patrol"]
        await alice.affiliate(patrol)
        await alice.ping_server()
        before = alice.keyring.epoch_key(patrol)
        members = channel_admin.current_members(alice, patrol)
        with pytest.raises(channel_admin.ChannelAdminError, match="not on"):
            await channel_admin.publish_roster(
                intruder, patrol, [*members, "harbour"], before.roster_version
            )
        await alice.ping_server()
        assert "harbour" not in field.server.channels[patrol].members
        assert alice.keyring.epoch_key(patrol) == before
        held = alice.keyring.channels[patrol].roster
        assert held is not None and held.member("harbour") is None
    finally:
        await stop(alice, intruder)


async def test_a_member_removed_mid_burst_hears_not_the_next_frame(field: Field) -> None:
    """alice is talking, bob and disp listen; `ptt-admin channel remove patrol bob` returns;
    the very next frame alice sends reaches disp and not bob (no polling window)."""
    disp, alice, bob = await online(field, "disp", "alice", "bob")
    try:
        patrol = field.channels["patrol"]
        for radio in (disp, alice, bob):
            await radio.affiliate(patrol)
            await radio.wait_for(control.Affiliated, lambda e: e.channel_id == patrol)
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        assert await alice.send_voice(b"before")
        for listener in (disp, bob):
            await listener.wait_for(events.VoiceFrame, lambda f: f.opus == b"before")
        async with connect(field.authority) as session:
            await channels.change_members(session, "patrol", remove=["bob"], now=time.time())
        bob.drain_events()
        for n in range(5):
            payload = b"after %d" % n
            assert await alice.send_voice(payload)
            await disp.wait_for(events.VoiceFrame, _carrying(payload))
        await alice.release()
        await disp.wait_for(control.FloorIdle, lambda e: e.channel_id == patrol)
        await bob.ping_server()  # anything the relay sent bob before this answer is in
        assert [e for e in bob.drain_events() if isinstance(e, events.VoiceFrame)] == []
    finally:
        await stop(disp, alice, bob)


def _carrying(payload: bytes) -> Callable[[events.VoiceFrame], bool]:
    return lambda frame: frame.opus == payload


def _roster(version: int, who: tuple[Issued, ...], signer: Issued) -> bytes:
    made = Roster(CHANNEL, version, tuple(Member.from_credential(a[1]) for a in who))
    return sign_roster(made, *signer)


def test_a_radio_refuses_a_roster_a_dispatcher_off_its_roster_signed_for_itself() -> None:
    """What a relay that forwards the intruder's roster anyway gets: the radio holds roster
    1 (disp, alice); roster 2 signed by an outsider lists the outsider, and its epoch."""
    keyring = Keyring(bundle_for(ROOT, ALICE), ALICE[0], lambda: T0)
    keyring.accept_roster(CHANNEL, _roster(1, (DISP, ALICE), AUTHORITY), T0)
    taken = (DISP, ALICE, OUTSIDER)
    found = keyring.accept_roster(CHANNEL, _roster(2, taken, OUTSIDER), T0)
    assert [type(e) for e in found] == [events.RosterRefused]
    key = new_epoch_key(CHANNEL, 2, 2)
    made = Roster(CHANNEL, 2, tuple(Member.from_credential(a[1]) for a in taken))
    envelope = wrap_epoch(key, made, {a[1].user_id: a[1] for a in taken}, *OUTSIDER)["alice"]
    keyring.accept_envelope(CHANNEL, envelope, T0)
    assert 2 not in keyring.channels[CHANNEL].epochs
    held = keyring.channels[CHANNEL].roster
    assert held is not None and held.version == 1
    # A dispatcher on the roster held may change it (and leave itself on), as may the authority.
    assert any(
        isinstance(e, events.KeysUpdated)
        for e in keyring.accept_roster(CHANNEL, _roster(2, (DISP, ALICE), DISP), T0)
    )
    keyring.accept_roster(CHANNEL, _roster(3, taken, AUTHORITY), T0)
    held = keyring.channels[CHANNEL].roster
    assert held is not None and held.version == 3


def test_a_revoked_dispatcher_on_the_roster_can_neither_key_nor_change_the_channel() -> None:
    """disp is still on the roster alice holds (the authority's new roster has not reached
    her yet); once she holds the revocation list, disp's envelope and roster are refused,
    and an old valid envelope replayed for a newer roster installs nothing."""
    keyring = Keyring(bundle_for(ROOT, ALICE), ALICE[0], lambda: T0)
    both = (DISP, ALICE)
    keyring.accept_roster(CHANNEL, _roster(1, both, AUTHORITY), T0)
    old = wrap_epoch(
        new_epoch_key(CHANNEL, 1, 1),
        Roster(CHANNEL, 1, tuple(Member.from_credential(a[1]) for a in both)),
        {a[1].user_id: a[1] for a in both},
        *DISP,
    )["alice"]
    assert any(
        isinstance(e, events.EpochInstalled) for e in keyring.accept_envelope(CHANNEL, old, T0)
    )
    revocations = ROOT.sign_revocations(version=1, issued_at=int(T0), serials=[DISP[1].serial])
    keyring.accept_revocations(revocations.to_bytes())
    refused = keyring.accept_roster(CHANNEL, _roster(2, both, DISP), T0)
    assert [type(e) for e in refused] == [events.RosterRefused]
    made = Roster(CHANNEL, 2, tuple(Member.from_credential(a[1]) for a in both))
    forged = wrap_epoch(
        new_epoch_key(CHANNEL, 2, 2), made, {a[1].user_id: a[1] for a in both}, *DISP
    )
    keyring.accept_roster(CHANNEL, _roster(2, both, AUTHORITY), T0)
    found = keyring.accept_envelope(CHANNEL, forged["alice"], T0)
    (refusal,) = found
    assert isinstance(refusal, events.EpochRefused) and "revoked" in refusal.reason
    assert 2 not in keyring.channels[CHANNEL].epochs
    held = keyring.epoch_key(CHANNEL)
    replayed = keyring.accept_envelope(CHANNEL, old, T0)  # for roster 1: changes nothing
    assert not any(isinstance(e, events.EpochInstalled) for e in replayed)
    assert keyring.epoch_key(CHANNEL) == held and held.epoch == 1
