"""Adversarial tests for crypto.text: sealed channel and direct messages."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import sealed as sealed_module
from crypto import text as text_module
from crypto.epoch import EpochKey, new_epoch_key
from crypto.errors import TextError
from crypto.identity import Credential, DeviceKeys, Role
from crypto.roster import Member, Roster
from crypto.text import (
    LABEL_LOCATION,
    MAX_PAYLOAD,
    MAX_SEALED_SIZE,
    open_channel_text,
    open_direct_text,
    open_for_channel,
    read_sealed_header,
    seal_channel_text,
    seal_direct_text,
    seal_for_channel,
)
from tests.crypto.test_identity import NOW, Org

CHANNEL = 3


class Squad:
    def __init__(self) -> None:
        self.org = Org()
        self.people = {n: self.org.enroll(n) for n in ("alice", "bob", "mallory")}
        self.people["dispatch"] = self.org.enroll("dispatch", Role.DISPATCHER)
        self.key = new_epoch_key(CHANNEL, 4, 1)

    def keys(self, name: str) -> DeviceKeys:
        return self.people[name][0]

    def cred(self, name: str) -> Credential:
        return self.people[name][1]

    def say(self, name: str, text: str, key: EpochKey | None = None) -> bytes:
        return seal_channel_text(key or self.key, text, self.keys(name), self.cred(name), NOW)

    def hear(self, sealed: bytes, sender: str, key: EpochKey | None = None) -> str:
        message = open_channel_text(
            sealed, key or self.key, self.cred(sender), self.org.trust, NOW + 1
        )
        return message.text

    def direct(self, sender: str, recipient: str, text: str) -> bytes:
        return seal_direct_text(
            self.cred(recipient), text, self.keys(sender), self.cred(sender), NOW
        )

    def read(self, sealed: bytes, me: str, sender: str) -> str:
        return open_direct_text(
            sealed, self.keys(me), self.cred(me), self.cred(sender), self.org.trust, NOW + 1
        ).text


def _channel_fields(sealed: bytes) -> sealed_module.ChannelSealed:
    return msgspec.msgpack.decode(sealed[2:], type=sealed_module.ChannelSealed)


def _direct_fields(sealed: bytes) -> sealed_module.DirectSealed:
    return msgspec.msgpack.decode(sealed[2:], type=sealed_module.DirectSealed)


@pytest.fixture(scope="module")
def squad() -> Squad:
    return Squad()


# --- channel text ----------------------------------------------------------------------------


def test_channel_text_round_trip(squad: Squad) -> None:
    sealed = squad.say("alice", "on scene, 10-97 \N{POLICE CAR}")
    message = open_channel_text(sealed, squad.key, squad.cred("alice"), squad.org.trust, NOW + 1)
    assert message.text == "on scene, 10-97 \N{POLICE CAR}"
    assert (message.channel_id, message.epoch, message.sender) == (CHANNEL, 4, "alice")
    assert message.sent_at == NOW and len(message.message_id) == 16
    assert b"on scene" not in sealed
    header = read_sealed_header(sealed)
    assert header.message_id == message.message_id
    assert (header.channel_id, header.epoch, header.sender, header.recipient) == (
        CHANNEL,
        4,
        "alice",
        None,
    )
    assert header.sender_fingerprint == squad.cred("alice").fingerprint()
    other = squad.say("alice", "on scene, 10-97 \N{POLICE CAR}")
    assert read_sealed_header(other).message_id != message.message_id


def test_tampered_channel_text_is_refused(squad: Squad) -> None:
    sealed = squad.say("alice", "need backup")
    fields = _channel_fields(sealed)
    flipped = bytes([fields.ciphertext[0] ^ 1]) + fields.ciphertext[1:]
    tampered = msgspec.structs.replace(fields, ciphertext=flipped)
    with pytest.raises(TextError, match="does not decrypt"):
        squad.hear(b"\x01\x01" + msgspec.msgpack.encode(tampered), "alice")
    tampered = msgspec.structs.replace(fields, message_id=bytes(16))  # dedup id is bound too
    with pytest.raises(TextError, match="does not decrypt"):
        squad.hear(b"\x01\x01" + msgspec.msgpack.encode(tampered), "alice")


def test_wrong_epoch_is_refused(squad: Squad) -> None:
    sealed = squad.say("alice", "status 4")
    next_key = new_epoch_key(CHANNEL, 5, 2)
    with pytest.raises(
        TextError, match="channel 3 epoch 4, but the key given is channel 3 epoch 5"
    ):
        squad.hear(sealed, "alice", next_key)
    # Relabelling the header to the key's epoch does not help: key and AAD both differ.
    moved = msgspec.structs.replace(_channel_fields(sealed), epoch=5)
    with pytest.raises(TextError, match="does not decrypt"):
        squad.hear(b"\x01\x01" + msgspec.msgpack.encode(moved), "alice", next_key)
    # Another key that claims the same epoch (e.g. a forged envelope) does not open it either.
    same_number = new_epoch_key(CHANNEL, 4, 1)
    with pytest.raises(TextError, match="does not decrypt"):
        squad.hear(sealed, "alice", same_number)


def test_forged_sender_signature_is_refused(squad: Squad) -> None:
    # Mallory holds the epoch key and writes a message as Alice, signing with her own key.
    alice = squad.cred("alice")
    with pytest.raises(TextError, match="do not match"):
        seal_channel_text(squad.key, "stand down", squad.keys("mallory"), alice, NOW)
    message_id, nonce = bytes(range(16)), bytes(12)
    aad = text_module._channel_aad(CHANNEL, 4, "text", message_id, "alice", alice.fingerprint())
    plaintext = msgspec.msgpack.encode(sealed_module.Plaintext(NOW, b"stand down"))
    ciphertext = text_module._channel_key(squad.key, "text").encrypt(nonce, plaintext, aad)
    unsigned = sealed_module.ChannelSealed(
        CHANNEL, 4, "text", message_id, "alice", alice.fingerprint(), nonce, ciphertext, b""
    )
    forged = msgspec.structs.replace(
        unsigned, signature=squad.keys("mallory").sign(text_module._channel_signed_part(unsigned))
    )
    with pytest.raises(TextError, match="signature refused"):
        squad.hear(b"\x01\x01" + msgspec.msgpack.encode(forged), "alice")


def test_sender_relabelled_in_header_is_refused(squad: Squad) -> None:
    sealed = squad.say("mallory", "stand down")
    alice = squad.cred("alice")
    relabelled = msgspec.structs.replace(
        _channel_fields(sealed), sender="alice", sender_fingerprint=alice.fingerprint()
    )
    with pytest.raises(TextError, match="does not decrypt"):
        squad.hear(b"\x01\x01" + msgspec.msgpack.encode(relabelled), "alice")
    with pytest.raises(TextError, match="claims sender 'mallory'"):
        squad.hear(sealed, "alice")  # the wrong credential supplied by the caller


def test_sender_not_on_roster_or_invalid_is_refused(squad: Squad) -> None:
    sealed = squad.say("mallory", "hello")
    roster = Roster(
        CHANNEL, 2, tuple(Member.from_credential(squad.cred(n)) for n in ("alice", "bob"))
    )
    with pytest.raises(TextError, match="'mallory' is not on roster version 2"):
        open_channel_text(
            sealed, squad.key, squad.cred("mallory"), squad.org.trust, NOW, roster=roster
        )
    foreign = Org()
    f_keys, f_cred = foreign.enroll("alice")
    sealed = seal_channel_text(squad.key, "hi", f_keys, f_cred, NOW)
    with pytest.raises(TextError, match=r"sender refused: .*another organisation"):
        open_channel_text(sealed, squad.key, f_cred, squad.org.trust, NOW)


def test_removed_members_old_key_cannot_read_the_new_epoch(squad: Squad) -> None:
    old_key = squad.key  # what a removed member still holds
    new_key = new_epoch_key(CHANNEL, 5, 2)
    sealed = squad.say("alice", "moving to the back entrance", new_key)
    assert squad.hear(sealed, "alice", new_key) == "moving to the back entrance"
    moved = msgspec.structs.replace(_channel_fields(sealed), epoch=old_key.epoch)
    for attempt in (sealed, b"\x01\x01" + msgspec.msgpack.encode(moved)):
        with pytest.raises(TextError):
            squad.hear(attempt, "alice", old_key)


def test_labels_separate_kinds_of_payload(squad: Squad) -> None:
    location = seal_for_channel(
        squad.key, LABEL_LOCATION, b"\x01\x02", squad.keys("bob"), squad.cred("bob"), NOW
    )
    opened = open_for_channel(
        location, LABEL_LOCATION, squad.key, squad.cred("bob"), squad.org.trust, NOW
    )
    assert opened.payload == b"\x01\x02" and opened.label == LABEL_LOCATION
    with pytest.raises(TextError, match="a 'location' message, not 'text'"):
        open_channel_text(location, squad.key, squad.cred("bob"), squad.org.trust, NOW)
    relabelled = msgspec.structs.replace(_channel_fields(location), label="text")
    with pytest.raises(TextError, match="does not decrypt"):
        open_channel_text(
            b"\x01\x01" + msgspec.msgpack.encode(relabelled),
            squad.key,
            squad.cred("bob"),
            squad.org.trust,
            NOW,
        )


def test_text_must_be_utf8_and_bounded(squad: Squad) -> None:
    sealed = seal_for_channel(
        squad.key, "text", b"\xff\xfe", squad.keys("bob"), squad.cred("bob"), NOW
    )
    with pytest.raises(TextError, match="not valid UTF-8"):
        squad.hear(sealed, "bob")
    with pytest.raises(TextError, match="shorten it"):
        squad.say("bob", "x" * (MAX_PAYLOAD + 1))
    with pytest.raises(TextError, match="message id"):
        seal_channel_text(
            squad.key, "hi", squad.keys("bob"), squad.cred("bob"), NOW, message_id=b"short"
        )


def test_malformed_sealed_messages_get_typed_errors(squad: Squad) -> None:
    sealed = squad.say("bob", "hi")
    direct = squad.direct("bob", "alice", "hi")
    for bad in (b"", b"\x01", b"\x02\x01" + sealed[2:], b"\x01\x03" + sealed[2:], sealed[:-1]):
        with pytest.raises(TextError):
            squad.hear(bad, "bob")
        with pytest.raises(TextError):
            read_sealed_header(bad)
    with pytest.raises(TextError, match="direct message, not a channel message"):
        squad.hear(direct, "bob")
    with pytest.raises(TextError, match="channel message, not a direct message"):
        squad.read(sealed, "alice", "bob")


# --- direct text -----------------------------------------------------------------------------


def test_direct_text_round_trip(squad: Squad) -> None:
    sealed = squad.direct("dispatch", "alice", "call me on 3")
    assert squad.read(sealed, "alice", "dispatch") == "call me on 3"
    header = read_sealed_header(sealed)
    assert (header.sender, header.recipient, header.channel_id) == ("dispatch", "alice", None)
    assert b"call me" not in sealed


def test_direct_text_to_the_wrong_recipient_is_refused(squad: Squad) -> None:
    sealed = squad.direct("dispatch", "alice", "for alice only")
    with pytest.raises(TextError, match="addressed to 'alice', not to this device of 'bob'"):
        squad.read(sealed, "bob", "dispatch")
    # Bob presenting Alice's public credential with his own keys cannot decrypt.
    with pytest.raises(TextError, match="does not decrypt"):
        open_direct_text(
            sealed,
            squad.keys("bob"),
            squad.cred("alice"),
            squad.cred("dispatch"),
            squad.org.trust,
            NOW,
        )
    # Re-addressing the header to Bob breaks the sender's signature.
    bob = squad.cred("bob")
    moved = msgspec.structs.replace(
        _direct_fields(sealed), recipient="bob", recipient_fingerprint=bob.fingerprint()
    )
    with pytest.raises(TextError, match="signature refused"):
        squad.read(b"\x01\x02" + msgspec.msgpack.encode(moved), "bob", "dispatch")


def test_direct_text_info_binds_sender_and_recipient(squad: Squad) -> None:
    # Mallory takes a message to Alice and re-signs it as her own: HPKE info still names
    # the dispatcher as sender, so decryption fails and she cannot claim it.
    sealed = squad.direct("dispatch", "alice", "code word is heron")
    mallory = squad.cred("mallory")
    unsigned = msgspec.structs.replace(
        _direct_fields(sealed), sender="mallory", sender_fingerprint=mallory.fingerprint()
    )
    resigned = msgspec.structs.replace(
        unsigned, signature=squad.keys("mallory").sign(text_module._direct_signed_part(unsigned))
    )
    with pytest.raises(TextError, match="does not decrypt"):
        squad.read(b"\x01\x02" + msgspec.msgpack.encode(resigned), "alice", "mallory")


def test_forged_direct_sender_is_refused(squad: Squad) -> None:
    # Mallory seals to Alice but claims to be the dispatcher.
    sealed = squad.direct("mallory", "alice", "stand down")
    with pytest.raises(TextError, match="claims sender 'mallory'"):
        squad.read(sealed, "alice", "dispatch")
    dispatch = squad.cred("dispatch")
    relabelled = msgspec.structs.replace(
        _direct_fields(sealed), sender="dispatch", sender_fingerprint=dispatch.fingerprint()
    )
    with pytest.raises(TextError, match="signature refused"):
        squad.read(b"\x01\x02" + msgspec.msgpack.encode(relabelled), "alice", "dispatch")


# --- bit flips -------------------------------------------------------------------------------

_SQUAD = Squad()
_CHANNEL_SEALED = _SQUAD.say("alice", "shots fired, 5th and main")
_DIRECT_SEALED = _SQUAD.direct("dispatch", "bob", "switch to channel 7")


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    bit %= len(flipped) * 8
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_sealed_channel_text_is_refused(bit: int) -> None:
    with pytest.raises(TextError):
        _SQUAD.hear(_flip(_CHANNEL_SEALED, bit), "alice")


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_sealed_direct_text_is_refused(bit: int) -> None:
    with pytest.raises(TextError):
        _SQUAD.read(_flip(_DIRECT_SEALED, bit), "bob", "dispatch")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_only_raise_text_error(data: bytes) -> None:
    with pytest.raises(TextError):
        _SQUAD.hear(data, "alice")
    with pytest.raises(TextError):
        _SQUAD.read(data, "bob", "dispatch")


def test_largest_messages_fit_the_control_blob_cap() -> None:
    org = Org()
    sender = org.enroll("s" * 64, device_id="d" * 64)
    recipient = org.enroll("r" * 64, device_id="e" * 64)
    key = new_epoch_key(2**32 - 1, 2**32 - 1, 2**32 - 1)
    text = "x" * MAX_PAYLOAD
    channel = seal_channel_text(key, text, sender[0], sender[1], NOW)
    direct = seal_direct_text(recipient[1], text, sender[0], sender[1], NOW)
    assert len(channel) <= MAX_SEALED_SIZE and len(direct) <= MAX_SEALED_SIZE
    assert open_channel_text(channel, key, sender[1], org.trust, NOW).text == text
    assert open_direct_text(direct, *recipient, sender[1], org.trust, NOW).text == text
