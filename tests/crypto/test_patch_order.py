"""Adversarial tests for crypto.patch_order: only a valid dispatcher's order, and not forever."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import patch_order as module
from crypto.errors import PatchError
from crypto.identity import Role, TrustAnchor
from crypto.patch_order import MAX_PATCH_LIFETIME, PatchOrder, sign_patch, verify_patch
from tests.crypto.test_identity import NOW, Org

ORG = Org()
DISPATCHER = ORG.enroll("dispatch", Role.DISPATCHER)
OFFICER = ORG.enroll("alice")


ROSTERS = (b"p" * 32, b"a" * 32, b"b" * 32)


def order(issued_at: float = NOW, lifetime: float = MAX_PATCH_LIFETIME) -> PatchOrder:
    return PatchOrder(9, (7, 8), issued_at, issued_at + lifetime, ROSTERS)


def signed(o: PatchOrder | None = None) -> bytes:
    return sign_patch(o or order(), *DISPATCHER)


def test_a_dispatchers_order_verifies_with_its_signer() -> None:
    got, signer = verify_patch(signed(), ORG.trust, NOW + 10)
    assert got == order() and signer == DISPATCHER[1]


def test_an_officer_cannot_sign_and_a_forged_officer_order_is_refused() -> None:
    with pytest.raises(PatchError, match="not a dispatcher"):
        sign_patch(order(), *OFFICER)
    # Signed "by hand" with the officer's own key, the order is still refused.
    keys, credential = OFFICER
    body = module._SignedPatch(
        order(),
        credential.to_bytes(),
        keys.sign(module._signed_part(order(), credential.fingerprint())),
    )
    forged = bytes((module._VERSION,)) + module._ENCODER.encode(body)
    with pytest.raises(PatchError, match="not a dispatcher"):
        verify_patch(forged, ORG.trust, NOW)


def test_a_tampered_order_is_refused() -> None:
    blob = signed()
    other = sign_patch(PatchOrder(9, (7, 10), NOW, NOW + 60, ROSTERS), *DISPATCHER)
    # Swap the order inside for another one, keep the signature: a relay redirecting.
    decoded = module._DECODER.decode(blob[1:])
    swapped = module._SignedPatch(
        module._DECODER.decode(other[1:]).order, decoded.signer_credential, decoded.signature
    )
    with pytest.raises(PatchError, match="bad signature"):
        verify_patch(bytes((module._VERSION,)) + module._ENCODER.encode(swapped), ORG.trust, NOW)


def test_an_order_expires_and_cannot_be_made_long_lived_or_dated_ahead() -> None:
    with pytest.raises(PatchError, match="expired"):
        verify_patch(signed(), ORG.trust, NOW + MAX_PATCH_LIFETIME)
    with pytest.raises(PatchError, match="at most"):
        signed(order(lifetime=MAX_PATCH_LIFETIME + 1))
    with pytest.raises(PatchError, match="in the future"):
        verify_patch(signed(order(issued_at=NOW + 600)), ORG.trust, NOW)


def test_a_revoked_or_foreign_signer_is_refused() -> None:
    revoked = Org()
    keys, credential = revoked.enroll("dispatch", Role.DISPATCHER)
    blob = sign_patch(order(), keys, credential)
    revoked.trust.verify_revocations(
        revoked.root.sign_revocations(version=1, issued_at=int(NOW), serials=[credential.serial])
    )
    with pytest.raises(PatchError, match="signer refused"):
        verify_patch(blob, revoked.trust, NOW)
    with pytest.raises(PatchError, match="signer refused"):
        verify_patch(signed(), TrustAnchor(Org().root.public_key_bytes()), NOW)


def test_linked_channels_are_distinct_and_not_the_patch_itself() -> None:
    for linked in ((7, 7), (7, 9)):
        with pytest.raises(PatchError, match="distinct"):
            sign_patch(PatchOrder(9, linked, NOW, NOW + 60, ROSTERS), *DISPATCHER)


def test_an_order_names_the_roster_of_every_channel_involved() -> None:
    for rosters in (ROSTERS[:2], (*ROSTERS, b"c" * 32)):
        with pytest.raises(PatchError, match="roster of every channel"):
            sign_patch(PatchOrder(9, (7, 8), NOW, NOW + 60, rosters), *DISPATCHER)
    # The same channels for other rosters is another order: the signature does not carry over.
    decoded = module._DECODER.decode(signed()[1:])
    other = msgspec.structs.replace(decoded.order, rosters=(b"x" * 32, *ROSTERS[1:]))
    moved = module._SignedPatch(other, decoded.signer_credential, decoded.signature)
    with pytest.raises(PatchError, match="bad signature"):
        verify_patch(bytes((module._VERSION,)) + module._ENCODER.encode(moved), ORG.trust, NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=2999))
def test_garbage_and_flipped_bytes_raise_only_patch_error(noise: bytes, at: int) -> None:
    blob = bytearray(signed())
    blob[at % len(blob)] ^= 0x5A
    for data in (bytes(noise), bytes(blob), bytes((1,)) + noise):
        with pytest.raises(PatchError):
            verify_patch(data, ORG.trust, NOW)
