"""Adversarial tests for crypto.roster: who may change a roster, and no rollback or replay."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import roster as roster_module
from crypto.errors import RosterError
from crypto.identity import Credential, DeviceKeys, Role
from crypto.roster import (
    MAX_MEMBERS,
    Member,
    Roster,
    RosterState,
    decode_signed_roster,
    sign_roster,
)
from tests.credentials import DAY
from tests.crypto.test_identity import NOW, Org

CHANNEL = 42


class Channel:
    """An org with a dispatcher, an admin and three officers on one channel."""

    def __init__(self) -> None:
        self.org = Org()
        self.dispatcher = self.org.enroll("dispatch", Role.DISPATCHER)
        self.admin = self.org.enroll("root-admin", Role.ADMIN)
        self.officers = [self.org.enroll(name) for name in ("alice", "bob", "carol")]

    def roster(self, version: int, names: tuple[str, ...] = ("alice", "bob", "carol")) -> Roster:
        by_name = {c.user_id: c for _, c in [self.dispatcher, *self.officers]}
        members = [Member.from_credential(by_name[name]) for name in ("dispatch", *names)]
        return Roster(CHANNEL, version, tuple(members))

    def signed(self, version: int, names: tuple[str, ...] = ("alice", "bob", "carol")) -> bytes:
        keys, credential = self.dispatcher
        return sign_roster(self.roster(version, names), keys, credential)


def _forge(roster: Roster, keys: DeviceKeys, credential: Credential) -> bytes:
    """What a modified client would send: a roster signed by anyone, bypassing sign_roster."""
    signature = keys.sign(roster_module._signed_part(roster, credential.fingerprint()))
    signed = roster_module._SignedRoster(roster, credential.to_bytes(), signature)
    return b"\x01" + msgspec.msgpack.encode(signed)


@pytest.fixture(scope="module")
def channel() -> Channel:
    return Channel()


def test_dispatcher_roster_is_accepted_and_orders_sender_indexes(channel: Channel) -> None:
    state = RosterState(CHANNEL)
    signed = channel.signed(1)
    roster = state.accept(signed, channel.org.trust, NOW)
    assert state.current == roster and state.signed == signed
    assert [m.user_id for m in roster.members] == ["dispatch", "alice", "bob", "carol"]
    assert roster.sender_index("dispatch") == 0
    assert roster.sender_index("bob") == 2
    with pytest.raises(RosterError, match="'zed' is not a member of channel 42"):
        roster.sender_index("zed")
    assert roster.member("carol") is not None and roster.member("zed") is None


def test_admin_roster_is_accepted(channel: Channel) -> None:
    keys, credential = channel.admin
    state = RosterState(CHANNEL)
    roster = channel.roster(3)
    assert state.accept(sign_roster(roster, keys, credential), channel.org.trust, NOW) == roster


def test_officer_roster_is_refused_by_signer_and_by_receiver(channel: Channel) -> None:
    keys, credential = channel.officers[0]
    roster = channel.roster(2, ("alice",))
    with pytest.raises(RosterError, match="only a dispatcher or admin"):
        sign_roster(roster, keys, credential)
    state = RosterState(CHANNEL)
    with pytest.raises(RosterError, match="'alice' with role 'officer'"):
        state.accept(_forge(roster, keys, credential), channel.org.trust, NOW)
    assert state.current is None


def test_rollback_and_replay_are_refused_and_change_nothing(channel: Channel) -> None:
    state = RosterState(CHANNEL)
    v1, v2 = channel.signed(1), channel.signed(2, ("alice", "bob"))
    state.accept(v1, channel.org.trust, NOW)
    accepted = state.accept(v2, channel.org.trust, NOW)
    with pytest.raises(RosterError, match="rolled back"):
        state.accept(v1, channel.org.trust, NOW)
    with pytest.raises(RosterError, match="replayed"):
        state.accept(v2, channel.org.trust, NOW)
    # A freshly signed roster that reuses the current version is a replay too.
    with pytest.raises(RosterError, match="replayed"):
        state.accept(channel.signed(2), channel.org.trust, NOW)
    assert state.current == accepted and state.signed == v2
    assert [m.user_id for m in accepted.members] == ["dispatch", "alice", "bob"]


def test_tampered_roster_is_refused(channel: Channel) -> None:
    signed = channel.signed(5, ("alice",))
    roster, signer, signature = decode_signed_roster(signed)
    _, mallory = channel.org.enroll("mallory")
    for tampered in (
        msgspec.structs.replace(roster, members=(*roster.members, Member.from_credential(mallory))),
        msgspec.structs.replace(roster, version=6),
        msgspec.structs.replace(roster, members=roster.members[::-1]),
    ):
        forged = roster_module._SignedRoster(tampered, signer.to_bytes(), signature)
        state = RosterState(CHANNEL)
        with pytest.raises(RosterError, match="bad signature"):
            state.accept(b"\x01" + msgspec.msgpack.encode(forged), channel.org.trust, NOW)
        assert state.current is None


def test_signer_credential_swap_is_refused(channel: Channel) -> None:
    # Another valid dispatcher's credential pasted in: the signature no longer matches.
    roster, _, signature = decode_signed_roster(channel.signed(7))
    _, other_dispatcher = channel.org.enroll("dispatch-2", Role.DISPATCHER)
    forged = roster_module._SignedRoster(roster, other_dispatcher.to_bytes(), signature)
    with pytest.raises(RosterError, match="bad signature"):
        RosterState(CHANNEL).accept(
            b"\x01" + msgspec.msgpack.encode(forged), channel.org.trust, NOW
        )


def test_roster_for_another_channel_is_refused(channel: Channel) -> None:
    with pytest.raises(RosterError, match="for channel 42, not channel 43"):
        RosterState(43).accept(channel.signed(1), channel.org.trust, NOW)


def test_signer_with_invalid_credential_is_refused(channel: Channel) -> None:
    org = channel.org
    keys, expired = org.enroll(
        "old-dispatch", Role.DISPATCHER, not_before=NOW - 9 * DAY, not_after=NOW - DAY
    )
    roster = channel.roster(9)
    signed = sign_roster(roster, keys, expired)
    with pytest.raises(RosterError, match=r"roster signer refused: .*expired"):
        RosterState(CHANNEL).accept(signed, org.trust, NOW)
    foreign = Org()
    f_keys, f_cred = foreign.enroll("foreign-dispatch", Role.DISPATCHER)
    with pytest.raises(RosterError, match="another organisation's root"):
        RosterState(CHANNEL).accept(sign_roster(roster, f_keys, f_cred), org.trust, NOW)


def test_revoked_dispatcher_roster_is_refused() -> None:
    org = Org()
    keys, dispatcher = org.enroll("dispatch", Role.DISPATCHER)
    roster = Roster(CHANNEL, 1, (Member.from_credential(dispatcher),))
    signed = sign_roster(roster, keys, dispatcher)
    org.trust.verify_revocations(
        org.root.sign_revocations(version=1, issued_at=0, serials=[dispatcher.serial])
    )
    with pytest.raises(RosterError, match="revoked"):
        RosterState(CHANNEL).accept(signed, org.trust, NOW)


def test_sign_roster_refuses_foreign_keys_and_duplicates(channel: Channel) -> None:
    _, credential = channel.dispatcher
    with pytest.raises(RosterError, match="do not match"):
        sign_roster(channel.roster(1), DeviceKeys.generate(), credential)
    keys = channel.dispatcher[0]
    duplicated = Roster(CHANNEL, 1, (channel.roster(1).members[1],) * 2)
    with pytest.raises(RosterError, match="lists 'alice' twice"):
        sign_roster(duplicated, keys, credential)
    with pytest.raises(RosterError, match="twice"):
        RosterState(CHANNEL).accept(_forge(duplicated, keys, credential), channel.org.trust, NOW)


def test_malformed_signed_rosters_get_typed_errors(channel: Channel) -> None:
    signed = channel.signed(1)
    for bad in (b"", b"\x02" + signed[1:], signed[:-1], signed + b"\x00", bytes(2 * 1024 * 1024)):
        with pytest.raises(RosterError):
            RosterState(CHANNEL).accept(bad, channel.org.trust, NOW)


_CHANNEL = Channel()
_SIGNED = _CHANNEL.signed(1)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_a_signed_roster_is_refused(bit: int) -> None:
    data = bytearray(_SIGNED)
    bit %= len(data) * 8
    data[bit // 8] ^= 1 << (bit % 8)
    state = RosterState(CHANNEL)
    with pytest.raises(RosterError):
        state.accept(bytes(data), _CHANNEL.org.trust, NOW)
    assert state.current is None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_only_raise_roster_error(data: bytes) -> None:
    with pytest.raises(RosterError):
        RosterState(CHANNEL).accept(data, _CHANNEL.org.trust, NOW)


def test_roster_size_is_capped(channel: Channel) -> None:
    keys, credential = channel.dispatcher
    fingerprint = credential.fingerprint()
    members = tuple(Member(f"user-{i}", Role.OFFICER, fingerprint) for i in range(MAX_MEMBERS + 1))
    with pytest.raises(RosterError, match="malformed"):
        sign_roster(Roster(CHANNEL, 1, members), keys, credential)
    largest = Roster(CHANNEL, 1, members[:MAX_MEMBERS])
    state = RosterState(CHANNEL)
    assert (
        len(state.accept(sign_roster(largest, keys, credential), channel.org.trust, NOW).members)
        == MAX_MEMBERS
    )


def test_an_equivalent_but_non_canonical_encoding_is_refused(channel: Channel) -> None:
    """The same values in another msgpack form (the signature as bin16, not bin8) still
    verify cryptographically; only the canonical-encoding check stands between it and a
    second byte form of one roster (two fingerprints for one object)."""
    signed = channel.signed(1)
    _, _, signature = decode_signed_roster(signed)
    canonical = b"\xc4\x40" + signature
    assert signed.endswith(canonical)
    altered = signed[: -len(canonical)] + b"\xc5\x00\x40" + signature
    assert msgspec.msgpack.decode(altered[1:]) == msgspec.msgpack.decode(signed[1:])
    with pytest.raises(RosterError, match="canonically"):
        decode_signed_roster(altered)
    state = RosterState(CHANNEL)
    with pytest.raises(RosterError):
        state.accept(altered, channel.org.trust, NOW)
    assert state.current is None


def test_a_digest_tells_apart_rosters_of_one_version(channel: Channel) -> None:
    # A patch order names rosters by digest: two dispatchers' version 2 must not pass as one.
    digests = {
        channel.roster(2).digest(),
        channel.roster(2, ("alice", "bob")).digest(),
        channel.roster(2, ("bob", "alice", "carol")).digest(),  # other sender indexes
        channel.roster(3).digest(),
    }
    assert len(digests) == 4 and channel.roster(2).digest() == channel.roster(2).digest()
