"""Channel epoch keys and the envelopes that carry them to members.

Each channel has an **epoch**: a 32-byte random secret from which the SFrame
per-sender keys (crypto.keyring) and the channel text keys (crypto.text) are
derived. A dispatcher or admin creates a new epoch whenever the roster changes
(in particular when a member is removed) and wraps it once per roster member.

An envelope is self-contained and individually signed:

* the secret is sealed with HPKE (RFC 9180; KEM ML-KEM-768 + X25519 hybrid,
  HKDF-SHA256, AES-128-GCM) to the member's credential HPKE key. ``cryptography``'s
  HPKE is single-shot with no AAD, so channel, epoch, roster version, recipient
  user id and credential fingerprint, and the creator's credential fingerprint are
  bound through HPKE ``info``: an envelope moved to another recipient, channel or
  epoch fails to decrypt;
* the creator signs channel | epoch | roster version | recipient | ciphertext with
  Ed25519 and ships its credential alongside, so a member can check that a
  dispatcher or admin certified by the org root made this key (the relay cannot
  hand out keys of its own).

A member removed from the roster simply gets no envelope for the new epoch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final

import msgspec

from crypto.errors import CredentialError, CryptoError, EnvelopeError, SignatureError
from crypto.identity import Credential, DeviceKeys, Role, TrustAnchor, hpke_seal
from crypto.roster import Roster
from crypto.wire import decode_versioned

__all__ = [
    "EPOCH_SECRET_SIZE",
    "EnvelopeHeader",
    "EpochKey",
    "check_epoch_creator",
    "new_epoch_key",
    "open_envelope",
    "read_envelope_creator",
    "read_envelope_header",
    "wrap_epoch",
]

EPOCH_SECRET_SIZE: Final = 32
_ENVELOPE_VERSION: Final = 1
_MAX_ENVELOPE_BYTES: Final = 8192
_INFO_CONTEXT: Final = b"fieldradio epoch envelope v1\x00"
_SIGNATURE_CONTEXT: Final = b"fieldradio epoch envelope signature v1\x00"

_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_Fingerprint = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_ENCODER: Final = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class EpochKey:
    """The secret of one channel epoch. ``repr`` never shows the secret."""

    channel_id: int
    epoch: int
    roster_version: int
    """Version of the roster this epoch was made for; its member order gives sender indexes."""
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != EPOCH_SECRET_SIZE:
            raise EnvelopeError(f"epoch secret must be {EPOCH_SECRET_SIZE} bytes")
        for name in ("channel_id", "epoch", "roster_version"):
            value = getattr(self, name)
            if not 0 <= value < 2**32:
                raise EnvelopeError(f"epoch key {name} {value} is outside 0..2**32-1")


def new_epoch_key(channel_id: int, epoch: int, roster_version: int) -> EpochKey:
    """A fresh random epoch key (32 bytes from the OS CSPRNG)."""
    return EpochKey(channel_id, epoch, roster_version, os.urandom(EPOCH_SECRET_SIZE))


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    channel_id: _U32
    epoch: _U32
    roster_version: _U32
    recipient: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    recipient_fingerprint: _Fingerprint
    creator_credential: Annotated[bytes, msgspec.Meta(max_length=4096)]
    ciphertext: Annotated[bytes, msgspec.Meta(max_length=2048)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


_ENVELOPE_DECODER: Final = msgspec.msgpack.Decoder(_Envelope)


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The public routing fields of an envelope (unauthenticated until opened)."""

    channel_id: int
    epoch: int
    roster_version: int
    recipient: str
    creator: str


def _info(
    channel_id: int,
    epoch: int,
    roster_version: int,
    recipient: str,
    recipient_fingerprint: bytes,
    creator_fingerprint: bytes,
) -> bytes:
    return _INFO_CONTEXT + _ENCODER.encode(
        (channel_id, epoch, roster_version, recipient, recipient_fingerprint, creator_fingerprint)
    )


def _signed_part(envelope: _Envelope) -> bytes:
    return _SIGNATURE_CONTEXT + _ENCODER.encode(
        (
            envelope.channel_id,
            envelope.epoch,
            envelope.roster_version,
            envelope.recipient,
            envelope.recipient_fingerprint,
            envelope.ciphertext,
        )
    )


def _decode(data: bytes) -> tuple[_Envelope, Credential]:
    envelope = decode_versioned(
        data,
        version=_ENVELOPE_VERSION,
        decoder=_ENVELOPE_DECODER,
        max_size=_MAX_ENVELOPE_BYTES,
        what="envelope",
        error=EnvelopeError,
        fix="refused (update the client if it is newer)",
    )
    try:
        creator = Credential.from_bytes(envelope.creator_credential)
    except CredentialError as exc:
        raise EnvelopeError(f"envelope carries a malformed creator credential: {exc}") from exc
    return envelope, creator


def read_envelope_header(data: bytes) -> EnvelopeHeader:
    """Decode the routing fields (channel, epoch, roster version, recipient, creator user id).

    For the server, to check an envelope is addressed as claimed before storing or
    forwarding it. Verifies nothing cryptographic. Raises :class:`EnvelopeError`.
    """
    envelope, creator = _decode(data)
    return EnvelopeHeader(
        envelope.channel_id,
        envelope.epoch,
        envelope.roster_version,
        envelope.recipient,
        creator.user_id,
    )


def read_envelope_creator(data: bytes) -> Credential:
    """The credential of the envelope's creator, decoded but NOT verified.

    Trust it only after :func:`open_envelope` accepted the same bytes: that checks the
    creator's certificate and signature. Raises :class:`EnvelopeError`.
    """
    return _decode(data)[1]


def check_epoch_creator(creator: Credential, roster: Roster) -> None:
    """Refuse an epoch made by someone who may not create one for ``roster``'s channel.

    Whoever creates an epoch knows its secret, so may read the channel. The org
    authority (role admin, ``ptt-admin``) creates epochs for any channel without being
    on it; a dispatcher only for a roster that lists that very credential, so nobody
    holds a channel's key without the members seeing them on the roster. An officer
    never creates one (:func:`open_envelope` refuses it already). Raises
    :class:`EnvelopeError`.
    """
    if creator.role is Role.ADMIN:
        return
    if not roster.pins(creator.user_id, creator.fingerprint()):
        raise EnvelopeError(
            f"epoch for channel {roster.channel_id} was created by dispatcher"
            f" {creator.user_id!r}, who is not on its roster (version {roster.version}): a"
            " dispatcher may only key a channel it is a member of; refused"
        )


def wrap_epoch(
    key: EpochKey,
    roster: Roster,
    recipients: Mapping[str, Credential],
    creator_keys: DeviceKeys,
    creator_credential: Credential,
    *,
    trust: TrustAnchor | None = None,
    now: float | None = None,
) -> dict[str, bytes]:
    """Seal ``key`` once per roster member: ``{user_id: envelope bytes}``.

    ``recipients`` maps each member's user id to its credential; each must be the
    credential the roster pins (same fingerprint). With ``trust`` and ``now`` each
    recipient credential is also verified (expired or revoked members are refused
    rather than given the key). Raises :class:`EnvelopeError` and returns nothing if
    any check fails: the creator must be a dispatcher or admin whose keys match its
    credential, and the key must be for this roster's channel and version.
    """
    if key.channel_id != roster.channel_id or key.roster_version != roster.version:
        raise EnvelopeError(
            f"epoch key is for channel {key.channel_id} roster {key.roster_version}, but the"
            f" roster is channel {roster.channel_id} version {roster.version}"
        )
    if not creator_credential.is_key_manager():
        raise EnvelopeError(
            f"{creator_credential.user_id!r} has role {creator_credential.role.value!r}: only a"
            " dispatcher or admin may create a channel epoch"
        )
    if not creator_keys.matches(creator_credential):
        raise EnvelopeError("creator keys do not match the creator credential")
    if trust is not None and now is None:
        raise EnvelopeError("wrap_epoch needs `now` to verify recipient credentials")
    creator_bytes = creator_credential.to_bytes()
    creator_fingerprint = creator_credential.fingerprint()
    envelopes: dict[str, bytes] = {}
    for member in roster.members:
        credential = recipients.get(member.user_id)
        if credential is None:
            raise EnvelopeError(
                f"no credential for roster member {member.user_id!r}: fetch it before rekeying"
            )
        recipient_fingerprint = credential.fingerprint()
        if credential.user_id != member.user_id or (
            recipient_fingerprint != member.credential_fingerprint
        ):
            raise EnvelopeError(
                f"credential given for {member.user_id!r} is not the one roster version"
                f" {roster.version} pins: fetch the current credential or re-sign the roster"
            )
        if trust is not None and now is not None:
            try:
                trust.verify_credential(credential, now)
            except CredentialError as exc:
                raise EnvelopeError(f"will not wrap the epoch key for a member: {exc}") from exc
        try:
            ciphertext = hpke_seal(
                credential.hpke_key,
                key.secret,
                _info(
                    key.channel_id,
                    key.epoch,
                    key.roster_version,
                    member.user_id,
                    recipient_fingerprint,
                    creator_fingerprint,
                ),
            )
        except CredentialError as exc:
            raise EnvelopeError(f"cannot wrap for {member.user_id!r}: {exc}") from exc
        unsigned = _Envelope(
            key.channel_id,
            key.epoch,
            key.roster_version,
            member.user_id,
            recipient_fingerprint,
            creator_bytes,
            ciphertext,
            b"",
        )
        envelope = msgspec.structs.replace(
            unsigned, signature=creator_keys.sign(_signed_part(unsigned))
        )
        envelopes[member.user_id] = bytes((_ENVELOPE_VERSION,)) + _ENCODER.encode(envelope)
    return envelopes


def open_envelope(
    envelope: bytes,
    my_keys: DeviceKeys,
    my_credential: Credential,
    trust: TrustAnchor,
    now: float,
    *,
    roster: Roster | None = None,
) -> EpochKey:
    """Check and open an envelope addressed to this device; return the epoch key.

    Verifies, in order: addressed to ``my_credential`` (user id and fingerprint); if a
    ``roster`` is given, made for that roster's channel and version; the creator's
    credential is valid at ``now`` under ``trust`` with role dispatcher or admin; the
    creator's signature; HPKE decryption with all context bound in ``info``.
    Raises :class:`EnvelopeError` on any failure.
    """
    sealed, creator = _decode(envelope)
    my_fingerprint = my_credential.fingerprint()
    if sealed.recipient != my_credential.user_id or sealed.recipient_fingerprint != my_fingerprint:
        raise EnvelopeError(
            f"envelope is addressed to {sealed.recipient!r}, not to this device of"
            f" {my_credential.user_id!r}: ignore it"
        )
    if roster is not None and (
        sealed.channel_id != roster.channel_id or sealed.roster_version != roster.version
    ):
        raise EnvelopeError(
            f"envelope is for channel {sealed.channel_id} roster {sealed.roster_version}, but"
            f" the accepted roster is channel {roster.channel_id} version {roster.version}:"
            " fetch the newest signed roster first"
        )
    try:
        trust.verify_credential(creator, now)
    except CredentialError as exc:
        raise EnvelopeError(f"envelope creator refused: {exc}") from exc
    if not creator.is_key_manager():
        raise EnvelopeError(
            f"envelope was created by {creator.user_id!r} with role {creator.role.value!r}: only"
            " a dispatcher or admin may create a channel epoch"
        )
    try:
        creator.verify_signature(_signed_part(sealed), sealed.signature)
    except SignatureError as exc:
        raise EnvelopeError(f"envelope signature does not verify (tampered): {exc}") from exc
    info = _info(
        sealed.channel_id,
        sealed.epoch,
        sealed.roster_version,
        sealed.recipient,
        sealed.recipient_fingerprint,
        creator.fingerprint(),
    )
    try:
        secret = my_keys.hpke_open(sealed.ciphertext, info)
    except CryptoError as exc:
        raise EnvelopeError(
            "envelope does not decrypt with this device's keys (not sealed to this device,"
            " or altered): ask a dispatcher to rekey the channel"
        ) from exc
    if len(secret) != EPOCH_SECRET_SIZE:
        raise EnvelopeError("envelope holds a secret of the wrong size: refused")
    return EpochKey(sealed.channel_id, sealed.epoch, sealed.roster_version, secret)
