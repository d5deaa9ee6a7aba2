"""Which epoch keys a radio takes: from whom, in which order, and never by crashing.

Unit tests of :meth:`Keyring.accept_envelope` / :meth:`Keyring.accept_roster` (pure, time
passed in), and one end to end: a relay that sends a second, different key for a held
epoch (an admin and a dispatcher rekeying at once, or a hostile relay) leaves the radio
connected, on the key it had.
"""

from __future__ import annotations

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import OrgRoot, Role
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_client.e2e import Keyring
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.credentials import Issued, bundle_for, issue
from tests.orgfixture import Org
from tests.ptt_client.relay_adversary import radios, relay_says

T0 = 1_900_000_000.0
ROOT = OrgRoot.generate()
CHANNEL = 12


DISP = issue(ROOT, "disp", Role.DISPATCHER, serial=1, now=T0)
ALICE = issue(ROOT, "alice", serial=2, now=T0)
OUTSIDER = issue(ROOT, "outsider", Role.DISPATCHER, serial=3, now=T0)
AUTHORITY = issue(ROOT, "admin", Role.ADMIN, serial=4, now=T0)


def roster(version: int) -> tuple[Roster, bytes]:
    members = tuple(Member.from_credential(a[1]) for a in (DISP, ALICE))
    made = Roster(CHANNEL, version, members)
    return made, sign_roster(made, *DISP)


def envelope_for_alice(version: int, creator: Issued) -> bytes:
    made, _ = roster(version)
    key = new_epoch_key(CHANNEL, version, version)
    return wrap_epoch(key, made, {a[1].user_id: a[1] for a in (DISP, ALICE)}, *creator)["alice"]


def alice_keyring() -> Keyring:
    return Keyring(bundle_for(ROOT, ALICE), ALICE[0], lambda: T0)


def test_a_second_different_key_for_a_held_epoch_is_refused_and_changes_nothing() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, roster(1)[1], T0)
    genuine = envelope_for_alice(1, DISP)
    first = keyring.accept_envelope(CHANNEL, genuine, T0)
    assert [type(e) for e in first] == [events.EpochInstalled, events.KeysUpdated]
    held = keyring.epoch_key(CHANNEL)
    sealer = keyring.channels[CHANNEL].sealer
    second = keyring.accept_envelope(CHANNEL, envelope_for_alice(1, AUTHORITY), T0)
    assert len(second) == 1 and isinstance(second[0], events.EpochRefused)
    assert "second, different key" in second[0].reason
    assert keyring.epoch_key(CHANNEL) == held
    assert keyring.channels[CHANNEL].sealer is sealer
    # The very same envelope again (a resend after a reconnect) is quietly a no-op.
    assert keyring.accept_envelope(CHANNEL, genuine, T0) == []


def test_an_epoch_from_a_dispatcher_off_the_roster_is_refused() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, roster(1)[1], T0)
    found = keyring.accept_envelope(CHANNEL, envelope_for_alice(1, OUTSIDER), T0)
    assert len(found) == 1 and isinstance(found[0], events.EpochRefused)
    assert found[0].creator == "outsider"
    assert 1 not in keyring.channels[CHANNEL].epochs


def test_the_authority_may_key_a_channel_it_is_not_on_and_is_named() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, roster(1)[1], T0)
    found = keyring.accept_envelope(CHANNEL, envelope_for_alice(1, AUTHORITY), T0)
    installed = found[0]
    assert isinstance(installed, events.EpochInstalled)
    assert (installed.creator, installed.creator_name, installed.creator_role) == (
        "admin",
        "Admin",
        "admin",
    )


def test_an_envelope_that_overtakes_its_roster_waits_for_it() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, roster(1)[1], T0)
    keyring.accept_envelope(CHANNEL, envelope_for_alice(1, DISP), T0)
    assert keyring.accept_envelope(CHANNEL, envelope_for_alice(2, DISP), T0) == []
    assert keyring.epoch_key(CHANNEL).epoch == 1
    found = keyring.accept_roster(CHANNEL, roster(2)[1], T0)
    assert any(isinstance(e, events.EpochInstalled) and e.epoch == 2 for e in found)
    assert keyring.epoch_key(CHANNEL).epoch == 2


def test_garbage_in_place_of_an_envelope_is_refused() -> None:
    keyring = alice_keyring()
    found = keyring.accept_envelope(CHANNEL, b"\x01\x02garbage", T0)
    assert len(found) == 1 and isinstance(found[0], events.EpochRefused)


async def test_a_relay_sending_a_conflicting_key_leaves_the_radio_up(
    org: Org, server: RelayServer
) -> None:
    other = new_epoch_key(org.channel_id, 1, 1)
    alice = org.accounts["alice"]
    disp = org.accounts["disp"]
    conflicting = wrap_epoch(other, org.roster, {alice.user_id: alice.credential}
                             | {u: a.credential for u, a in org.accounts.items()},
                             disp.keys, disp.credential)["alice"]  # fmt: skip
    async with radios(org, server, "alice") as c:
        radio = c["alice"]
        held = radio.keyring.epoch_key(org.channel_id)
        relay_says(
            server,
            "alice",
            control.KeyEnvelope(
                channel_id=org.channel_id, epoch=1, recipient="alice", envelope=conflicting
            ),
        )
        refused = await radio.wait_for(events.EpochRefused)
        assert refused.epoch == 1
        await radio.ping_server()  # still connected, still reading
        assert radio.connected.is_set() and radio.reconnects == 0
        assert radio.keyring.epoch_key(org.channel_id) == held


async def test_one_credential_on_two_devices_does_not_flap(org: Org, server: RelayServer) -> None:
    """The second login wins; the first device is told why and stops retrying (issue 10: both
    reconnected 46 times in 8 s, with no word of why)."""
    from ptt_client.client import RadioClient

    bundle = org.bundle("alice", server)
    first = RadioClient(bundle, bundle.open_keys(None), use_udp=False)
    second = RadioClient(bundle, bundle.open_keys(None), use_udp=False)
    await first.start()
    await first.wait_connected()
    try:
        await second.start()
        await second.wait_connected()
        told = await first.wait_for(events.LoginRefused)
        assert told.code == control.ERROR_LOGGED_IN_ELSEWHERE and "revoke" in told.text
        await second.ping_server()
        assert server.sessions.by_user["alice"].session_index == second.session_index
        assert first.reconnects == 0 and second.reconnects == 0
        assert not first.connected.is_set()
    finally:
        await first.stop()
        await second.stop()
