"""Signed call descriptions: a device's word on the media of one private call.

A private call's media goes peer to peer over DTLS-SRTP, whose keys are authenticated only
by the certificate fingerprints in the SDP. The SDP travels through the relay, so a relay
that rewrote both SDPs with its own certificates' fingerprints could terminate DTLS on each
side and hear the call (aiortc accepts that: it checks the certificate against whatever SDP
it was given). So each side signs, with its device's Ed25519 key, a **call description**:
the call id, the caller and the callee, which side it is (offer or answer), the call's mode,
emergency flag and commencement, the whole SDP (with every ICE candidate: aiortc does not trickle) and
the DTLS fingerprints of its own certificate. The other side checks the signature against
the credential the org root issued (:func:`verify_call_description`), that the description
is for this call and these two users, and - before handing the SDP to WebRTC - that the
fingerprints WebRTC will check are exactly the signed ones (``ptt_client.calls``).

The blob is ``version byte | msgpack``, with the signer's credential inside, at most
:data:`MAX_DESCRIPTION_BYTES` so it fits a control message.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from crypto.errors import CallError, SignatureError
from crypto.identity import Credential, DeviceKeys, TrustAnchor
from crypto.signed_blob import open_with_signer

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_DESCRIPTION_BYTES",
    "MAX_SDP_BYTES",
    "CallDescription",
    "sign_call_description",
    "verify_call_description",
]

MAX_SDP_BYTES: Final = 10 * 1024
"""An audio-only SDP with host, reflexive and relay candidates is about 1.5 KB."""
MAX_DESCRIPTION_BYTES: Final = 16 * 1024
MAX_CLOCK_SKEW: Final = 300.0
"""A description signed this far from the verifier's clock, either way, is still taken: it
bounds replays of a recorded description to a call with the same id (which radios refuse)."""
_VERSION: Final = 1
_CONTEXT: Final = b"fieldradio call description v1\x00"
_ENCODER: Final = msgspec.msgpack.Encoder()

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Fingerprint = tuple[
    Annotated[str, msgspec.Meta(min_length=1, max_length=16)],
    Annotated[str, msgspec.Meta(min_length=1, max_length=200)],
]


class CallDescription(msgspec.Struct, array_like=True, frozen=True):
    """One side's media description of private call ``call_id`` between ``caller`` and
    ``callee``; ``side`` says who wrote it (the offer is the caller's)."""

    call_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    side: Literal["offer", "answer"]
    caller: _Id
    callee: _Id
    mode: Literal["full_duplex", "half_duplex"]
    emergency: bool
    commencement: Literal["automatic", "manual"]
    """Signed too: a relay that made a manual call automatic would have the callee's radio
    answer without the officer."""
    sdp: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SDP_BYTES)]
    fingerprints: Annotated[tuple[_Fingerprint, ...], msgspec.Meta(min_length=1, max_length=4)]
    """``(algorithm, value)`` of the signer's DTLS certificate: lower-case algorithm
    (``sha-256``), upper-case colon-separated hex value, sorted."""
    issued_at: float

    @property
    def signer(self) -> str:
        """The user whose device must have signed this side."""
        return self.caller if self.side == "offer" else self.callee

    def fingerprint_set(self) -> frozenset[tuple[str, str]]:
        """The signed fingerprints as a set, to compare with what WebRTC will check."""
        return frozenset(self.fingerprints)


class _SignedDescription(msgspec.Struct, array_like=True, frozen=True):
    description: CallDescription
    signer_credential: Annotated[bytes, msgspec.Meta(max_length=4096)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


_DECODER: Final = msgspec.msgpack.Decoder(_SignedDescription)


def _signed_part(description: CallDescription, signer_fingerprint: bytes) -> bytes:
    return _CONTEXT + signer_fingerprint + _ENCODER.encode(description)


def _check(description: CallDescription) -> None:
    if description.caller == description.callee:
        raise CallError("a call description names two different users: refused")
    if list(description.fingerprints) != sorted(set(description.fingerprints)):
        raise CallError("a call description's fingerprints are sorted and distinct: refused")


def sign_call_description(
    description: CallDescription, keys: DeviceKeys, credential: Credential
) -> bytes:
    """Sign ``description`` as its side's user; the result carries the credential.

    Raises :class:`CallError` if the keys are not the credential's, the credential is not
    the user the side names, or the description is invalid.
    """
    if not keys.matches(credential):
        raise CallError("signer keys do not match the signer credential: use this device's own")
    if credential.user_id != description.signer:
        raise CallError(
            f"{credential.user_id!r} cannot sign the {description.side} of a call "
            f"that {description.signer!r} must sign"
        )
    _check(description)
    signature = keys.sign(_signed_part(description, credential.fingerprint()))
    blob = _SignedDescription(description, credential.to_bytes(), signature)
    data = bytes((_VERSION,)) + _ENCODER.encode(blob)
    if len(data) > MAX_DESCRIPTION_BYTES:
        raise CallError(f"call description is {len(data)} bytes, over {MAX_DESCRIPTION_BYTES}")
    return data


def verify_call_description(
    data: bytes,
    trust: TrustAnchor,
    now: float,
    *,
    call_id: bytes,
    side: Literal["offer", "answer"],
    caller: str,
    callee: str,
) -> tuple[CallDescription, Credential]:
    """The description and its signer, if the device of the user who writes ``side`` of call
    ``call_id`` between ``caller`` and ``callee`` signed it, recently, under a credential the
    org root issued and has not revoked.

    Raises :class:`CallError` (malformed, signer refused, another call or other users, bad
    signature, stale) and nothing else; its text says who is to blame, for the call log.
    """
    signed, signer = open_with_signer(
        data,
        trust,
        now,
        version=_VERSION,
        decoder=_DECODER,
        max_size=MAX_DESCRIPTION_BYTES,
        what="call description",
        error=CallError,
        fix="update the radio",
    )
    description = signed.description
    _check(description)
    expected = (call_id, side, caller, callee)
    got = (description.call_id, description.side, description.caller, description.callee)
    if got != expected:
        raise CallError(
            f"call description is for the {description.side} of a call between "
            f"{description.caller!r} and {description.callee!r}, not this call's {side} "
            f"between {caller!r} and {callee!r}: replayed or redirected by the relay"
        )
    if signer.user_id != description.signer:
        raise CallError(
            f"the {side} of this call is signed by {signer.user_id!r}, "
            f"not by {description.signer!r}"
        )
    try:
        signer.verify_signature(_signed_part(description, signer.fingerprint()), signed.signature)
    except SignatureError as exc:
        raise CallError(
            f"the {side} from {description.signer!r} has a bad signature (altered on the way): "
            f"{exc}"
        ) from exc
    if abs(description.issued_at - now) > MAX_CLOCK_SKEW:
        raise CallError(
            f"the {side} from {description.signer!r} was signed "
            f"{abs(description.issued_at - now):.0f} s away from this radio's clock: "
            "replayed, or a clock is wrong"
        )
    return description, signer
