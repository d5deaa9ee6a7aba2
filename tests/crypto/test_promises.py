"""Promise-level adversarial tests for crypto/: any single bit an attacker flips is caught.

The per-module tests flip whole bytes (``^= 0x01``) or aim at one structure; these
flip *any* bit of what crosses the relay, as docs/security.md promises:

* a voice frame together with its media inner header (the relay moving a frame to
  another channel, burst, sequence or flag set is a bit flip in the header);
* a signed burst statement (a member trying to make its frame look signed);
* the login statement and its signature (a man in the middle re-using a login);
* a signed revocation list (the relay trying to un-revoke a lost phone).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.epoch import new_epoch_key
from crypto.errors import CredentialError, FrameError, SignatureError
from crypto.identity import TrustAnchor
from crypto.keyring import FrameOpener, FrameSealer
from crypto.talker import BurstSigner, BurstVerifier
from ptt_protocol import media
from ptt_protocol.login import login_statement
from tests.crypto.test_identity import NOW, Org

CHANNEL = 77
BURST = 4_000_000_000
T0 = 5_000.0
OPUS = bytes(range(50))

_ORG = Org()
_ALICE_KEYS, _ALICE = _ORG.enroll("alice")
_REVOKED_KEYS, _REVOKED = _ORG.enroll("lost-phone")
_EPOCH = new_epoch_key(CHANNEL, 3, 2)
_ALICE_INDEX = 1

# One genuine voice frame as it travels: inner header (the SFrame metadata) + SFrame bytes.
_HEADER = media.pack_inner(CHANNEL, BURST, 17, media.FEC, b"")
_FRAME = FrameSealer(_EPOCH, _ALICE_INDEX, first_counter=2**40).seal(_HEADER, OPUS, T0)
_INNER = _HEADER + _FRAME

# Alice's signed statement over five frames of her burst.
_SENT = [(sequence, bytes([sequence]) * 40) for sequence in range(5)]
_SIGNER = BurstSigner(_ALICE_KEYS, CHANNEL, BURST, T0)
for _sequence, _frame in _SENT:
    _SIGNER.add(_sequence, _frame)
_STATEMENT = _SIGNER.sign(T0, end=True)

# A login: what the server checks against the credential (ptt_server.login.log_in).
_SERVER_NONCE = bytes(range(32))
_CLIENT_NONCE = bytes(range(32, 64))
_TLS_FINGERPRINT = bytes(range(64, 96))
_LOGIN = login_statement(_SERVER_NONCE, _CLIENT_NONCE, _TLS_FINGERPRINT)
_LOGIN_SIGNATURE = _ALICE_KEYS.sign(_LOGIN)

_REVOCATIONS = _ORG.root.sign_revocations(
    version=4, issued_at=int(NOW), serials=[_REVOKED.serial], device_ids=[_REVOKED.device_id]
).to_bytes()


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    bit %= len(flipped) * 8
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def test_the_genuine_objects_pass() -> None:
    """The positive control: without a flip, everything below is accepted."""
    opener = FrameOpener()
    opener.add_epoch(_EPOCH, T0)
    assert (
        opener.open(_INNER[: media.INNER_HEADER.size], _FRAME, _ALICE_INDEX, T0, burst=BURST)
        == OPUS
    )
    verifier = BurstVerifier(_ALICE, CHANNEL, BURST)
    for sequence, frame in _SENT:
        verifier.add(sequence, frame)
    assert verifier.check(_STATEMENT).verified == (0, 1, 2, 3, 4)
    _ALICE.verify_signature(_LOGIN, _LOGIN_SIGNATURE)
    assert (
        TrustAnchor(_ORG.root.public_key_bytes()).verify_revocations(_REVOCATIONS).revokes(_REVOKED)
    )


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_a_voice_frame_or_its_inner_header_is_refused(bit: int) -> None:
    """A relay that changes the channel, burst, sequence, flags, KID, counter, ciphertext
    or tag of a frame gets it refused, and the genuine frame still opens afterwards."""
    inner = _flip(_INNER, bit)
    opener = FrameOpener()
    opener.add_epoch(_EPOCH, T0)
    header, frame = inner[: media.INNER_HEADER.size], inner[media.INNER_HEADER.size :]
    with pytest.raises(FrameError):  # ReplayError is a FrameError too
        opener.open(header, frame, _ALICE_INDEX, T0, burst=int.from_bytes(header[4:8], "big"))
    assert opener.open(_HEADER, _FRAME, _ALICE_INDEX, T0, burst=BURST) == OPUS


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_a_signed_statement_never_verifies(bit: int) -> None:
    verifier = BurstVerifier(_ALICE, CHANNEL, BURST)
    for sequence, frame in _SENT:
        verifier.add(sequence, frame)
    with pytest.raises(SignatureError):
        verifier.check(_flip(_STATEMENT, bit))
    assert verifier.verified == () and verifier.forged == ()
    assert verifier.check(_STATEMENT).verified == (0, 1, 2, 3, 4)


@settings(max_examples=200, deadline=None)
@given(
    part=st.sampled_from(["server_nonce", "client_nonce", "tls", "signature"]), bit=st.integers(0)
)
def test_any_bit_flip_in_a_login_is_refused(part: str, bit: int) -> None:
    """Another server nonce (a replayed login), another certificate (a man in the middle)
    or an altered signature: the server's signature check fails."""
    server_nonce, client_nonce, tls = _SERVER_NONCE, _CLIENT_NONCE, _TLS_FINGERPRINT
    signature = _LOGIN_SIGNATURE
    if part == "server_nonce":
        server_nonce = _flip(server_nonce, bit)
    elif part == "client_nonce":
        client_nonce = _flip(client_nonce, bit)
    elif part == "tls":
        tls = _flip(tls, bit)
    else:
        signature = _flip(signature, bit)
    with pytest.raises(SignatureError):
        _ALICE.verify_signature(login_statement(server_nonce, client_nonce, tls), signature)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_a_revocation_list_is_refused_and_keeps_the_old_one(bit: int) -> None:
    org_trust = TrustAnchor(_ORG.root.public_key_bytes())
    older = _ORG.root.sign_revocations(version=3, issued_at=int(NOW), serials=[])
    org_trust.verify_revocations(older.to_bytes())
    with pytest.raises(CredentialError):
        org_trust.verify_revocations(_flip(_REVOCATIONS, bit))
    assert org_trust.revocations == older
