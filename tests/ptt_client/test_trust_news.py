"""What the key ring reports about the trust material the server sends again at every login
(:mod:`ptt_client.trust_news`): the held roster re-sent is no news, a stale one is refused
and marked as such, a member's refused credential names the member, and this device's own
revocation is told once. Pure: a :class:`~ptt_client.e2e.Keyring` and time passed in."""

from __future__ import annotations

from crypto.identity import OrgRoot, Role
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_client.e2e import Keyring
from tests.credentials import Issued, bundle_for, issue

T0 = 1_900_000_000.0
ROOT = OrgRoot.generate()
CHANNEL = 12

DISP = issue(ROOT, "disp", Role.DISPATCHER, serial=1, now=T0)
ALICE = issue(ROOT, "alice", serial=2, now=T0)
BOB = issue(ROOT, "bob", serial=3, now=T0)
BLANC = issue(ROOT, "o.blanc", serial=4, now=T0)
FORGER = issue(OrgRoot.generate(), "disp", Role.DISPATCHER, serial=1, now=T0)


def signed(version: int, *members: Issued, by: Issued = DISP) -> bytes:
    roster = Roster(CHANNEL, version, tuple(Member.from_credential(m[1]) for m in members))
    return sign_roster(roster, *by)


def alice_keyring() -> Keyring:
    return Keyring(bundle_for(ROOT, ALICE), ALICE[0], lambda: T0)


def revocations(version: int, *revoked: Issued) -> bytes:
    return ROOT.sign_revocations(
        version=version, issued_at=int(T0), serials=sorted(r[1].serial for r in revoked)
    ).to_bytes()


def test_the_held_roster_sent_again_is_no_news() -> None:
    keyring = alice_keyring()
    first = signed(1, DISP, ALICE, BOB)
    found = keyring.accept_roster(CHANNEL, first, T0)
    assert [type(e) for e in found] == [events.KeysUpdated]  # a first roster: no change told
    assert keyring.accept_roster(CHANNEL, first, T0) == []  # every login re-sends it
    assert keyring.channels[CHANNEL].roster_state.current is not None


def test_a_newer_roster_says_who_joined_and_who_left() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, signed(1, DISP, ALICE, BLANC), T0)
    found = keyring.accept_roster(CHANNEL, signed(2, DISP, ALICE, BOB), T0)
    assert events.RosterChanged(CHANNEL, 2, added=("bob",), removed=("o.blanc",)) in found


def test_an_older_roster_is_refused_as_stale_and_says_whether_it_concerns_me() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, signed(1, DISP, ALICE), T0)
    keyring.accept_roster(CHANNEL, signed(2, DISP, ALICE, BOB), T0)
    keyring.accept_roster(CHANNEL, signed(3, DISP, BOB), T0)  # alice is taken off
    [stale] = keyring.accept_roster(CHANNEL, signed(2, DISP, ALICE, BOB), T0)
    assert isinstance(stale, events.RosterRefused)
    assert (stale.version, stale.older, stale.changes_me) == (2, True, True)
    assert "not newer than version 3" in stale.reason
    [other] = keyring.accept_roster(CHANNEL, signed(1, DISP, BOB, BLANC), T0)
    assert isinstance(other, events.RosterRefused)
    assert (other.older, other.changes_me) == (True, False)  # alice is off it too
    held = keyring.channels[CHANNEL].roster
    assert held is not None and held.version == 3


def test_a_forged_roster_is_refused_once_not_at_every_login() -> None:
    keyring = alice_keyring()
    keyring.accept_roster(CHANNEL, signed(1, DISP, ALICE), T0)
    forged = signed(5, DISP, ALICE, BLANC, by=FORGER)
    [refused] = keyring.accept_roster(CHANNEL, forged, T0)
    assert isinstance(refused, events.RosterRefused)
    assert (refused.version, refused.older) == (5, False)
    assert keyring.accept_roster(CHANNEL, forged, T0) == []  # the same one again
    held = keyring.channels[CHANNEL].roster
    assert held is not None and held.version == 1
    # Something else refused in between: the next copy is told again.
    keyring.accept_roster(CHANNEL, b"\x01not a roster", T0)
    assert len(keyring.accept_roster(CHANNEL, forged, T0)) == 1


def test_an_unreadable_roster_may_concern_me() -> None:
    [refused] = alice_keyring().accept_roster(CHANNEL, b"\x01not a roster", T0)
    assert isinstance(refused, events.RosterRefused)
    assert (refused.version, refused.older, refused.changes_me) == (0, False, True)


def test_a_refused_credential_names_its_member_and_why() -> None:
    keyring = alice_keyring()
    keyring.accept_revocations(revocations(1, BLANC))
    found = keyring.add_credentials([BLANC[1].to_bytes(), BOB[1].to_bytes(), b"junk"], T0)
    assert [(e.user_id, e.reason) for e in found if isinstance(e, events.CredentialRefused)] == [
        ("o.blanc", "revoked"),
        ("", "invalid"),
    ]
    assert "bob" in keyring.credentials and "o.blanc" not in keyring.credentials


def test_my_own_revocation_is_told_once() -> None:
    keyring = alice_keyring()
    assert keyring.accept_revocations(revocations(1, BLANC)) == []  # someone else's device
    told = keyring.accept_revocations(revocations(2, BLANC, ALICE))
    assert told == [events.CredentialRevoked("alice", 2, ALICE[1].device_id)]
    assert keyring.accept_revocations(revocations(2, BLANC, ALICE)) == []  # re-sent at login
    assert keyring.accept_revocations(revocations(3, BLANC, ALICE, BOB)) == []  # still revoked
    assert keyring.accept_revocations(revocations(1, BLANC)) == []  # older: refused, kept
