"""Signed patch orders: a dispatcher's word that channels are linked, until when.

A patch makes radios talk on another channel (the patch's) when the officer presses PTT
on their own (:class:`ptt_protocol.control.Patch`). Were the relay's say-so enough, a relay
could send an officer's speech on ``patrol`` to the members of any other channel the
officer is on. So a patch is an order signed by a dispatcher's device (:func:`sign_patch`),
which radios verify against the org root (:func:`verify_patch`) before following it; they
also check that the signer is on every channel involved (``ptt_client.patch_orders``).
An order names the roster of every channel involved as its signer held it
(:meth:`crypto.roster.Roster.digest`): the dispatcher vouches that the patch's channel holds
the linked channels' members and nobody else, which stops being true the moment any of
those rosters changes, so radios follow an order only while they hold those rosters. An order
expires (at most :data:`MAX_PATCH_LIFETIME` after it was signed) so a relay cannot replay
one after the patch ended; dispatcher consoles re-sign the patches they are on before
half of that has passed.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from crypto.errors import PatchError, SignatureError
from crypto.identity import Credential, DeviceKeys, TrustAnchor
from crypto.signed_blob import open_with_signer

__all__ = ["MAX_PATCH_LIFETIME", "PatchOrder", "sign_patch", "verify_patch"]

MAX_PATCH_LIFETIME: Final = 3600.0
"""Longest an order is valid, seconds: the window in which an ended patch can be replayed."""
MAX_CLOCK_SKEW: Final = 300.0
"""An order signed up to this far in the radio's future is still taken (device clocks)."""
MAX_LINKED: Final = 8
_VERSION: Final = 2
_CONTEXT: Final = b"fieldradio patch v2\x00"
_MAX_BYTES: Final = 8192
_U32 = Annotated[int, msgspec.Meta(ge=1, lt=2**32)]
_DIGEST = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_ENCODER: Final = msgspec.msgpack.Encoder()


class PatchOrder(msgspec.Struct, array_like=True, frozen=True):
    """Channels ``linked`` talk through channel ``patch_channel`` from ``issued_at`` until
    ``expires_at`` (Unix seconds), unless ended sooner, while the channels :attr:`involved`
    have the rosters whose digests are ``rosters`` (in the same order)."""

    patch_channel: _U32
    linked: Annotated[tuple[_U32, ...], msgspec.Meta(min_length=2, max_length=MAX_LINKED)]
    issued_at: float
    expires_at: float
    rosters: Annotated[tuple[_DIGEST, ...], msgspec.Meta(max_length=MAX_LINKED + 1)]

    @property
    def involved(self) -> tuple[int, ...]:
        """The patch's channel, then the linked ones: the channels ``rosters`` are of."""
        return (self.patch_channel, *self.linked)


class _SignedPatch(msgspec.Struct, array_like=True, frozen=True):
    order: PatchOrder
    signer_credential: Annotated[bytes, msgspec.Meta(max_length=4096)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


_DECODER: Final = msgspec.msgpack.Decoder(_SignedPatch)


def _signed_part(order: PatchOrder, signer_fingerprint: bytes) -> bytes:
    return _CONTEXT + signer_fingerprint + _ENCODER.encode(order)


def _check(order: PatchOrder) -> None:
    if len(set(order.linked)) != len(order.linked) or order.patch_channel in order.linked:
        raise PatchError("a patch order links distinct channels other than its own: refused")
    if len(order.rosters) != len(order.involved):
        raise PatchError("a patch order names the roster of every channel involved: refused")
    if not 0 < order.expires_at - order.issued_at <= MAX_PATCH_LIFETIME:
        raise PatchError(
            f"a patch order is valid for at most {MAX_PATCH_LIFETIME:.0f} s after signing: refused"
        )


def sign_patch(order: PatchOrder, keys: DeviceKeys, credential: Credential) -> bytes:
    """Sign ``order`` as a dispatcher (or the admin); the result carries the credential.

    Raises :class:`PatchError` if the role may not patch, the keys are not the credential's,
    or the order is invalid.
    """
    if not credential.is_key_manager():
        raise PatchError(f"{credential.user_id!r} is not a dispatcher: only a dispatcher patches")
    if not keys.matches(credential):
        raise PatchError("signer keys do not match the signer credential: use this device's own")
    _check(order)
    signature = keys.sign(_signed_part(order, credential.fingerprint()))
    blob = _SignedPatch(order, credential.to_bytes(), signature)
    return bytes((_VERSION,)) + _ENCODER.encode(blob)


def verify_patch(data: bytes, trust: TrustAnchor, now: float) -> tuple[PatchOrder, Credential]:
    """The order and its signer, if a valid dispatcher signed it and it is in force at ``now``.

    Raises :class:`PatchError` (malformed, not a dispatcher's, revoked or expired signer,
    bad signature, expired or not yet valid order) and nothing else.
    """
    signed, signer = open_with_signer(
        data,
        trust,
        now,
        version=_VERSION,
        decoder=_DECODER,
        max_size=_MAX_BYTES,
        what="patch order",
        error=PatchError,
        fix="update the client",
    )
    order = signed.order
    _check(order)
    if not signer.is_key_manager():
        raise PatchError(f"patch order signed by {signer.user_id!r}, who is not a dispatcher")
    try:
        signer.verify_signature(_signed_part(order, signer.fingerprint()), signed.signature)
    except SignatureError as exc:
        raise PatchError(f"patch order has a bad signature (tampered): {exc}") from exc
    if now >= order.expires_at:
        raise PatchError("patch order expired (replayed, or no dispatcher renewed it)")
    if order.issued_at > now + MAX_CLOCK_SKEW:
        raise PatchError("patch order is signed in the future: check this device's clock")
    return order, signer
