"""Adversarial tests for crypto.call_description: only the right device's word on this call."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import call_description as module
from crypto.call_description import (
    MAX_CLOCK_SKEW,
    CallDescription,
    sign_call_description,
    verify_call_description,
)
from crypto.errors import CallError
from crypto.identity import TrustAnchor
from tests.crypto.test_identity import NOW, Org

ORG = Org()
ALICE = ORG.enroll("alice")
BOB = ORG.enroll("bob")
MALLORY = ORG.enroll("mallory")
CALL = b"c" * 16
FINGERPRINTS = (("sha-256", "AB:CD"), ("sha-384", "01:02"))
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 AB:CD\r\n"


def offer(**changes: object) -> CallDescription:
    fields: dict[str, object] = {
        "call_id": CALL,
        "side": "offer",
        "caller": "alice",
        "callee": "bob",
        "mode": "full_duplex",
        "emergency": False,
        "commencement": "automatic",
        "sdp": SDP,
        "fingerprints": FINGERPRINTS,
        "issued_at": NOW,
    }
    fields.update(changes)
    return CallDescription(**fields)  # type: ignore[arg-type]


def verify(blob: bytes, now: float = NOW, **expect: object) -> CallDescription:
    args: dict[str, object] = {"call_id": CALL, "side": "offer", "caller": "alice"}
    args["callee"] = "bob"
    args.update(expect)
    description, _signer = verify_call_description(blob, ORG.trust, now, **args)  # type: ignore[arg-type]
    return description


def test_the_callers_offer_and_the_callees_answer_verify() -> None:
    assert verify(sign_call_description(offer(), *ALICE)) == offer()
    answer = offer(side="answer")
    got, signer = verify_call_description(
        sign_call_description(answer, *BOB),
        ORG.trust,
        NOW + 5,
        call_id=CALL,
        side="answer",
        caller="alice",
        callee="bob",
    )
    assert got == answer and signer == BOB[1]


def test_only_the_sides_user_can_sign_it() -> None:
    with pytest.raises(CallError, match="'mallory' cannot sign the offer"):
        sign_call_description(offer(), *MALLORY)
    with pytest.raises(CallError, match="do not match"):
        sign_call_description(offer(), ALICE[0], BOB[1])
    # Signed "by hand" with mallory's own key: refused at the verifier.
    keys, credential = MALLORY
    body = module._SignedDescription(
        offer(),
        credential.to_bytes(),
        keys.sign(module._signed_part(offer(), credential.fingerprint())),
    )
    forged = bytes((module._VERSION,)) + module._ENCODER.encode(body)
    with pytest.raises(CallError, match="signed by 'mallory', not by 'alice'"):
        verify(forged)


def test_a_rewritten_sdp_or_fingerprint_is_refused() -> None:
    """The relay in the middle: its own certificate's fingerprint in alice's offer."""
    decoded = module._DECODER.decode(sign_call_description(offer(), *ALICE)[1:])
    for altered in (
        offer(sdp=SDP.replace("AB:CD", "EE:FF")),
        offer(fingerprints=(("sha-256", "EE:FF"),)),
        offer(emergency=True),
    ):
        swapped = module._SignedDescription(altered, decoded.signer_credential, decoded.signature)
        blob = bytes((module._VERSION,)) + module._ENCODER.encode(swapped)
        with pytest.raises(CallError, match="bad signature"):
            verify(blob)


def test_a_description_for_another_call_side_or_pair_is_refused() -> None:
    blob = sign_call_description(offer(), *ALICE)
    for expect in (
        {"call_id": b"d" * 16},
        {"side": "answer"},
        {"callee": "carol"},
        {"caller": "carol", "callee": "bob"},
    ):
        with pytest.raises(CallError, match="replayed or redirected"):
            verify(blob, **expect)


def test_a_stale_or_future_description_is_refused() -> None:
    blob = sign_call_description(offer(), *ALICE)
    assert verify(blob, NOW + MAX_CLOCK_SKEW) == offer()
    for now in (NOW + MAX_CLOCK_SKEW + 1, NOW - MAX_CLOCK_SKEW - 1):
        with pytest.raises(CallError, match="clock"):
            verify(blob, now)


def test_a_revoked_or_foreign_signer_is_refused() -> None:
    blob = sign_call_description(offer(), *ALICE)
    revoked = TrustAnchor(
        ORG.root.public_key_bytes(),
        ORG.root.sign_revocations(version=1, issued_at=int(NOW), serials=[ALICE[1].serial]),
    )
    with pytest.raises(CallError, match="signer refused"):
        verify_call_description(
            blob, revoked, NOW, call_id=CALL, side="offer", caller="alice", callee="bob"
        )
    other = Org()
    with pytest.raises(CallError, match="signer refused"):
        verify_call_description(
            blob, other.trust, NOW, call_id=CALL, side="offer", caller="alice", callee="bob"
        )


def test_unsorted_fingerprints_and_a_self_call_are_refused() -> None:
    with pytest.raises(CallError, match="sorted"):
        sign_call_description(offer(fingerprints=tuple(reversed(FINGERPRINTS))), *ALICE)
    with pytest.raises(CallError, match="two different users"):
        sign_call_description(offer(callee="alice"), *ALICE)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_raises_only_call_error(data: bytes) -> None:
    for blob in (data, bytes((module._VERSION,)) + data):
        with pytest.raises(CallError):
            verify(blob)


def test_a_flipped_byte_anywhere_is_refused() -> None:
    blob = sign_call_description(offer(), *ALICE)
    for index in range(0, len(blob), 7):
        altered = bytearray(blob)
        altered[index] ^= 0x01
        with pytest.raises(CallError):
            verify(bytes(altered))


def test_an_oversized_description_is_refused_before_decoding() -> None:
    big = bytes((module._VERSION,)) + msgspec.msgpack.encode([b"x" * module.MAX_DESCRIPTION_BYTES])
    with pytest.raises(CallError, match="more than"):
        verify(big)
