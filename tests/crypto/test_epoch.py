"""Adversarial tests for crypto.epoch: envelopes reach exactly the roster, from a key manager."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import epoch as epoch_module
from crypto.epoch import (
    EpochKey,
    check_epoch_creator,
    new_epoch_key,
    open_envelope,
    read_envelope_creator,
    read_envelope_header,
    wrap_epoch,
)
from crypto.errors import EnvelopeError
from crypto.identity import Credential, DeviceKeys, Role, hpke_seal
from crypto.roster import Member, Roster
from tests.credentials import DAY
from tests.crypto.test_identity import NOW, Org

CHANNEL = 9
NAMES = ("alice", "bob", "carol")


class Team:
    """A dispatcher and three officers, with roster version 1 of channel 9."""

    def __init__(self) -> None:
        self.org = Org()
        self.dispatcher = self.org.enroll("dispatch", Role.DISPATCHER)
        self.people = {name: self.org.enroll(name) for name in NAMES}
        self.people["dispatch"] = self.dispatcher
        self.credentials = {name: cred for name, (_, cred) in self.people.items()}

    def roster(self, version: int, names: tuple[str, ...] = NAMES) -> Roster:
        members = (Member.from_credential(self.credentials[n]) for n in ("dispatch", *names))
        return Roster(CHANNEL, version, tuple(members))

    def wrap(self, key: EpochKey, roster: Roster) -> dict[str, bytes]:
        keys, credential = self.dispatcher
        return wrap_epoch(key, roster, self.credentials, keys, credential)

    def open(self, name: str, envelope: bytes, roster: Roster | None = None) -> EpochKey:
        keys, credential = self.people[name]
        return open_envelope(envelope, keys, credential, self.org.trust, NOW, roster=roster)


def _encode(envelope: epoch_module._Envelope) -> bytes:
    return b"\x01" + msgspec.msgpack.encode(envelope)


def _decode(data: bytes) -> epoch_module._Envelope:
    return msgspec.msgpack.decode(data[1:], type=epoch_module._Envelope)


def _resign(envelope: epoch_module._Envelope, keys: DeviceKeys) -> epoch_module._Envelope:
    """A valid creator signature over altered fields: isolates the HPKE ``info`` binding."""
    return msgspec.structs.replace(
        envelope, signature=keys.sign(epoch_module._signed_part(envelope))
    )


@pytest.fixture(scope="module")
def team() -> Team:
    return Team()


def test_every_member_opens_its_own_envelope(team: Team) -> None:
    roster = team.roster(1)
    key = new_epoch_key(CHANNEL, 1, 1)
    envelopes = team.wrap(key, roster)
    assert set(envelopes) == {"dispatch", *NAMES}
    for name, envelope in envelopes.items():
        assert team.open(name, envelope, roster) == key
    header = read_envelope_header(envelopes["bob"])
    assert (header.channel_id, header.epoch, header.roster_version) == (CHANNEL, 1, 1)
    assert (header.recipient, header.creator) == ("bob", "dispatch")


def test_epoch_keys_are_random_and_repr_hides_the_secret() -> None:
    a, b = new_epoch_key(1, 1, 1), new_epoch_key(1, 1, 1)
    assert a.secret != b.secret and len(a.secret) == 32
    assert a.secret.hex() not in repr(a) and "secret" not in repr(a)
    with pytest.raises(EnvelopeError):
        EpochKey(1, 1, 1, b"short")
    with pytest.raises(EnvelopeError):
        EpochKey(-1, 1, 1, bytes(32))


def test_envelope_opened_by_another_member_is_refused(team: Team) -> None:
    envelopes = team.wrap(new_epoch_key(CHANNEL, 2, 1), team.roster(1))
    with pytest.raises(EnvelopeError, match="addressed to 'alice', not to this device of 'bob'"):
        team.open("bob", envelopes["alice"])
    # Bob presents Alice's (public) credential with his own keys: HPKE refuses.
    bob_keys, _ = team.people["bob"]
    with pytest.raises(EnvelopeError, match="does not decrypt"):
        open_envelope(envelopes["alice"], bob_keys, team.credentials["alice"], team.org.trust, NOW)


def test_swapped_channel_epoch_or_roster_version_is_refused(team: Team) -> None:
    # Even with a valid creator signature over the new fields, HPKE info no longer matches.
    dispatcher_keys, _ = team.dispatcher
    sealed = _decode(team.wrap(new_epoch_key(CHANNEL, 3, 1), team.roster(1))["alice"])
    for field, value in (("channel_id", CHANNEL + 1), ("epoch", 4), ("roster_version", 2)):
        moved = _resign(msgspec.structs.replace(sealed, **{field: value}), dispatcher_keys)
        with pytest.raises(EnvelopeError, match="does not decrypt"):
            team.open("alice", _encode(moved))


def test_swapped_recipient_credential_is_refused(team: Team) -> None:
    # Alice re-enrolled with the same keys: her new credential has another fingerprint.
    # An envelope for the old credential, re-addressed to the new one, fails on info.
    alice_keys, _ = team.people["alice"]
    _, alice_new = team.org.enroll("alice", keys=alice_keys)
    dispatcher_keys, _ = team.dispatcher
    sealed = _decode(team.wrap(new_epoch_key(CHANNEL, 5, 1), team.roster(1))["alice"])
    moved = _resign(
        msgspec.structs.replace(sealed, recipient_fingerprint=alice_new.fingerprint()),
        dispatcher_keys,
    )
    with pytest.raises(EnvelopeError, match="does not decrypt"):
        open_envelope(_encode(moved), alice_keys, alice_new, team.org.trust, NOW)


def test_tampered_fields_without_resigning_are_refused(team: Team) -> None:
    sealed = _decode(team.wrap(new_epoch_key(CHANNEL, 6, 1), team.roster(1))["alice"])
    moved = msgspec.structs.replace(sealed, epoch=7)
    with pytest.raises(EnvelopeError, match="signature does not verify"):
        team.open("alice", _encode(moved))


def test_envelope_from_a_non_dispatcher_creator_is_refused(team: Team) -> None:
    officer_keys, officer = team.people["bob"]
    roster = team.roster(1)
    key = new_epoch_key(CHANNEL, 8, 1)
    with pytest.raises(EnvelopeError, match="only a dispatcher or admin"):
        wrap_epoch(key, roster, team.credentials, officer_keys, officer)
    # A modified client builds the envelope anyway: the receiver refuses it.
    alice = team.credentials["alice"]
    info = epoch_module._info(CHANNEL, 8, 1, "alice", alice.fingerprint(), officer.fingerprint())
    unsigned = epoch_module._Envelope(
        CHANNEL,
        8,
        1,
        "alice",
        alice.fingerprint(),
        officer.to_bytes(),
        hpke_seal(alice.hpke_key, key.secret, info),
        b"",
    )
    with pytest.raises(EnvelopeError, match="'bob' with role 'officer'"):
        team.open("alice", _encode(_resign(unsigned, officer_keys)))


def test_creator_with_expired_revoked_or_foreign_credential_is_refused() -> None:
    team = Team()
    roster = team.roster(1)
    key = new_epoch_key(CHANNEL, 1, 1)
    old_keys, old = team.org.enroll(
        "dispatch", Role.DISPATCHER, not_before=NOW - 9 * DAY, not_after=NOW - DAY
    )
    with pytest.raises(EnvelopeError, match=r"creator refused: .*expired"):
        team.open("alice", wrap_epoch(key, roster, team.credentials, old_keys, old)["alice"])
    other = Org()
    f_keys, foreign = other.enroll("dispatch", Role.DISPATCHER)
    with pytest.raises(EnvelopeError, match="another organisation's root"):
        team.open("alice", wrap_epoch(key, roster, team.credentials, f_keys, foreign)["alice"])
    envelopes = team.wrap(key, roster)
    team.org.trust.verify_revocations(
        team.org.root.sign_revocations(version=1, issued_at=0, serials=[team.dispatcher[1].serial])
    )
    with pytest.raises(EnvelopeError, match="revoked"):
        team.open("alice", envelopes["alice"])


def test_envelope_for_another_roster_version_is_refused_when_roster_given(team: Team) -> None:
    roster_1, roster_2 = team.roster(1), team.roster(2, ("alice", "bob"))
    envelopes = team.wrap(new_epoch_key(CHANNEL, 9, 1), roster_1)
    with pytest.raises(EnvelopeError, match="fetch the newest signed roster"):
        team.open("alice", envelopes["alice"], roster_2)


def test_removed_member_gets_nothing_and_opens_nothing(team: Team) -> None:
    before = team.roster(10)
    old_key = new_epoch_key(CHANNEL, 10, 10)
    assert team.open("carol", team.wrap(old_key, before)["carol"], before) == old_key
    after = team.roster(11, ("alice", "bob"))
    new_key = new_epoch_key(CHANNEL, 11, 11)
    envelopes = team.wrap(new_key, after)
    assert "carol" not in envelopes
    assert set(envelopes) == {"dispatch", "alice", "bob"}
    for name, envelope in envelopes.items():
        with pytest.raises(EnvelopeError):
            team.open("carol", envelope)
        # Even presenting the addressee's public credential with Carol's keys fails.
        carol_keys, _ = team.people["carol"]
        with pytest.raises(EnvelopeError, match="does not decrypt"):
            open_envelope(envelope, carol_keys, team.credentials[name], team.org.trust, NOW)
    assert team.open("alice", envelopes["alice"], after) == new_key
    assert new_key.secret != old_key.secret


def test_wrap_epoch_refuses_inconsistent_input(team: Team) -> None:
    keys, dispatcher = team.dispatcher
    roster = team.roster(1)
    with pytest.raises(EnvelopeError, match="roster is channel 9 version 1"):
        wrap_epoch(new_epoch_key(CHANNEL, 1, 2), roster, team.credentials, keys, dispatcher)
    missing = {k: v for k, v in team.credentials.items() if k != "bob"}
    with pytest.raises(EnvelopeError, match="no credential for roster member 'bob'"):
        wrap_epoch(new_epoch_key(CHANNEL, 1, 1), roster, missing, keys, dispatcher)
    # A credential other than the one the roster pins (e.g. a server swapping in its own).
    _, impostor = team.org.enroll("bob")
    swapped: dict[str, Credential] = {**team.credentials, "bob": impostor}
    with pytest.raises(EnvelopeError, match="not the one roster version 1 pins"):
        wrap_epoch(new_epoch_key(CHANNEL, 1, 1), roster, swapped, keys, dispatcher)
    with pytest.raises(EnvelopeError, match="do not match"):
        wrap_epoch(
            new_epoch_key(CHANNEL, 1, 1),
            roster,
            team.credentials,
            DeviceKeys.generate(),
            dispatcher,
        )


def test_wrap_epoch_with_trust_refuses_a_revoked_member() -> None:
    team = Team()
    keys, dispatcher = team.dispatcher
    team.org.trust.verify_revocations(
        team.org.root.sign_revocations(
            version=1, issued_at=0, device_ids=[team.credentials["carol"].device_id]
        )
    )
    key = new_epoch_key(CHANNEL, 1, 1)
    with pytest.raises(EnvelopeError, match=r"'carol'.*revoked"):
        wrap_epoch(
            key, team.roster(1), team.credentials, keys, dispatcher, trust=team.org.trust, now=NOW
        )
    with pytest.raises(EnvelopeError, match="needs `now`"):
        wrap_epoch(key, team.roster(1), team.credentials, keys, dispatcher, trust=team.org.trust)
    envelopes = wrap_epoch(
        key,
        team.roster(1, ("alice", "bob")),
        team.credentials,
        keys,
        dispatcher,
        trust=team.org.trust,
        now=NOW,
    )
    assert set(envelopes) == {"dispatch", "alice", "bob"}


def test_malformed_envelopes_get_typed_errors(team: Team) -> None:
    envelope = team.wrap(new_epoch_key(CHANNEL, 1, 1), team.roster(1))["alice"]
    for bad in (b"", b"\x02" + envelope[1:], envelope[:-1], envelope + b"\x00", bytes(9000)):
        with pytest.raises(EnvelopeError):
            team.open("alice", bad)
        with pytest.raises(EnvelopeError):
            read_envelope_header(bad)


_TEAM = Team()
_ENVELOPE = _TEAM.wrap(new_epoch_key(CHANNEL, 1, 1), _TEAM.roster(1))["alice"]
_CIPHERTEXT_AT = _ENVELOPE.index(_decode(_ENVELOPE).ciphertext)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_an_envelope_is_refused(bit: int) -> None:
    data = bytearray(_ENVELOPE)
    bit %= len(data) * 8
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EnvelopeError):
        _TEAM.open("alice", bytes(data))


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_the_envelope_ciphertext_is_refused(bit: int) -> None:
    # The ciphertext is under half of the envelope; aim at it so every HPKE byte is reached.
    sealed = _decode(_ENVELOPE)
    data = bytearray(_ENVELOPE)
    bit = _CIPHERTEXT_AT * 8 + bit % (len(sealed.ciphertext) * 8)
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EnvelopeError):
        _TEAM.open("alice", bytes(data))


# --- who may create an epoch (check_epoch_creator) --------------------------------------------


def test_the_authority_keys_any_channel_a_dispatcher_only_its_own() -> None:
    team = Team()
    _, admin = team.org.enroll("authority", Role.ADMIN)
    _, outsider = team.org.enroll("outsider", Role.DISPATCHER)
    roster = team.roster(1)
    check_epoch_creator(admin, roster)  # not on the roster, and needs not be
    check_epoch_creator(team.dispatcher[1], roster)  # on the roster
    with pytest.raises(EnvelopeError, match="not on its roster"):
        check_epoch_creator(outsider, roster)


def test_a_dispatcher_listed_with_another_device_is_not_its_creator() -> None:
    team = Team()
    _, second_device = team.org.enroll("dispatch", Role.DISPATCHER)  # same user, other device
    roster = team.roster(1)  # pins the first device
    with pytest.raises(EnvelopeError, match="not on its roster"):
        check_epoch_creator(second_device, roster)


def test_the_creator_read_from_an_envelope_is_the_signer() -> None:
    team = Team()
    roster = team.roster(1)
    envelopes = team.wrap(new_epoch_key(CHANNEL, 1, 1), roster)
    creator = read_envelope_creator(envelopes["alice"])
    assert creator.fingerprint() == team.dispatcher[1].fingerprint()
    with pytest.raises(EnvelopeError):
        read_envelope_creator(b"\x01garbage")
