"""Who is who: the org root, device keys, credentials, revocation lists.

An organisation has one **org root** (Ed25519). It certifies each enrolled device
with a :class:`Credential`: user id, display name, role, device id, the device's
Ed25519 signing key and its HPKE public key (ML-KEM-768 + X25519 hybrid), a
validity window and a serial. Servers and clients pin the root's public key in a
:class:`TrustAnchor` and accept nothing that does not chain to it. The root also
signs a :class:`RevocationList` (serials and device ids) with a monotonic version.

Wire formats are msgpack (``msgspec`` structs, ``array_like``) behind a one-byte
format version, with every variable-length field capped. Decoding is strict:
an encoding that does not re-encode to the exact same bytes is refused, so each
object has exactly one encoding and its SHA-256 fingerprint is stable.

Every signature is made over a context label plus the encoded fields
("fieldradio credential v1" ...), so a signature made for one purpose can never
be replayed as another (domain separation, cf. RFC 8032 Ed25519ctx's rationale).

Device keys and the root key are exported with an optional passphrase
(scrypt, RFC 7914, then AES-256-GCM with the file header as associated data).
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from crypto.device_keys import (
    HPKE_PUBLIC_KEY_SIZE,
    HPKE_SUITE,
    SIGNATURE_SIZE,
    SIGNING_KEY_SIZE,
    DeviceKeys,
    SigningKey,
    ed25519_public_key,
    hpke_public_key,
    hpke_seal,
)
from crypto.errors import CredentialError, KeyStoreError, SignatureError
from crypto.keyfile import DEFAULT_SCRYPT_N, key_file_kind, open_key_file, seal_key_file
from crypto.wire import decode_versioned

__all__ = [
    "DEFAULT_SCRYPT_N",
    "HPKE_PUBLIC_KEY_SIZE",
    "HPKE_SUITE",
    "SIGNATURE_SIZE",
    "SIGNING_KEY_SIZE",
    "Credential",
    "DeviceKeys",
    "OrgRoot",
    "RevocationList",
    "Role",
    "TrustAnchor",
    "hpke_seal",
    "key_file_kind",
]

# --- sizes and limits ---------------------------------------------------------------------------

_KEY_ID_SIZE: Final = 8

_CREDENTIAL_VERSION: Final = 1
_REVOCATIONS_VERSION: Final = 1
_MAX_CREDENTIAL_BYTES: Final = 4096
_MAX_REVOKED: Final = 65_536
_MAX_REVOCATIONS_BYTES: Final = 4 * 1024 * 1024

_CREDENTIAL_CONTEXT: Final = b"fieldradio credential v1\x00"
_REVOCATIONS_CONTEXT: Final = b"fieldradio revocations v1\x00"

_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_U63 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_DisplayName = Annotated[str, msgspec.Meta(max_length=128)]
_KeyId = Annotated[bytes, msgspec.Meta(min_length=_KEY_ID_SIZE, max_length=_KEY_ID_SIZE)]
_HpkeKey = Annotated[
    bytes, msgspec.Meta(min_length=HPKE_PUBLIC_KEY_SIZE, max_length=HPKE_PUBLIC_KEY_SIZE)
]
_Signature = Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_SIZE, max_length=SIGNATURE_SIZE)]

_ENCODER: Final = msgspec.msgpack.Encoder()


class Role(enum.StrEnum):
    """What a credential holder may do. Dispatchers and admins may sign rosters and epochs."""

    OFFICER = "officer"
    DISPATCHER = "dispatcher"
    ADMIN = "admin"


KEY_MANAGER_ROLES: Final = frozenset({Role.DISPATCHER, Role.ADMIN})
"""Roles allowed to sign rosters and create channel epochs."""


def _key_id(public_key: bytes) -> bytes:
    """Short identifier of an org root key, shown in errors and carried in credentials."""
    return hashlib.sha256(b"fieldradio root key id\x00" + public_key).digest()[:_KEY_ID_SIZE]


def _date(timestamp: int) -> str:
    """Render a Unix time for an error message (a conversion, not a clock read)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- credentials --------------------------------------------------------------------------------


class Credential(msgspec.Struct, array_like=True, frozen=True):
    """A device certified by the org root. Decode with :meth:`from_bytes`, check with
    :meth:`TrustAnchor.verify_credential` before trusting any field."""

    issuer: _KeyId
    """Key id of the org root that signed it (first 8 bytes of a hash of its public key)."""
    serial: _U63
    user_id: _UserId
    display_name: _DisplayName
    role: Role
    device_id: _DeviceId
    signing_key: SigningKey
    """Raw Ed25519 public key of the device (32 bytes)."""
    hpke_key: _HpkeKey
    """Raw ML-KEM-768 + X25519 public key of the device (1,216 bytes)."""
    not_before: _U63
    """Unix seconds; the credential is valid from this time on."""
    not_after: _U63
    """Unix seconds; the credential is expired from this time on."""
    root_signature: _Signature

    def signed_part(self) -> bytes:
        """The exact bytes the org root signs: a context label then every field but the signature."""
        return _CREDENTIAL_CONTEXT + _ENCODER.encode(
            (
                self.issuer,
                self.serial,
                self.user_id,
                self.display_name,
                self.role,
                self.device_id,
                self.signing_key,
                self.hpke_key,
                self.not_before,
                self.not_after,
            )
        )

    def to_bytes(self) -> bytes:
        """Canonical wire form: a format version byte, then the msgpack array."""
        return bytes((_CREDENTIAL_VERSION,)) + _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Credential:
        """Decode a credential (structure only; the signature is checked by a TrustAnchor).

        Raises :class:`CredentialError` for oversize, unknown version, malformed or
        non-canonical input.
        """
        return decode_versioned(
            data,
            version=_CREDENTIAL_VERSION,
            decoder=_CREDENTIAL_DECODER,
            max_size=_MAX_CREDENTIAL_BYTES,
            what="credential",
            error=CredentialError,
            fix="update the client or re-enroll the device",
        )

    def fingerprint(self) -> bytes:
        """SHA-256 of :meth:`to_bytes` (32 bytes): names this exact credential in rosters."""
        return hashlib.sha256(self.to_bytes()).digest()

    def verify_signature(self, data: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature by this device over ``data``; raise :class:`SignatureError`.

        Callers must put their own context label in ``data`` (as the login statement and
        burst statements do) so signatures cannot be moved between purposes.
        """
        try:
            ed25519_public_key(self.signing_key).verify(signature, data)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"signature by {self.user_id!r} (device {self.device_id!r}) does not verify:"
                " the data was altered or signed by another device"
            ) from exc

    def is_key_manager(self) -> bool:
        """True if this role may sign rosters and create channel epochs (dispatcher, admin)."""
        return self.role in KEY_MANAGER_ROLES


_CREDENTIAL_DECODER: Final = msgspec.msgpack.Decoder(Credential)


# --- revocation lists ---------------------------------------------------------------------------


class RevocationList(msgspec.Struct, array_like=True, frozen=True):
    """Credentials the org root has revoked, by serial or by device id.

    ``serials`` and ``device_ids`` are sorted and unique (checked on decode), so
    look-ups are binary searches and the encoding is canonical.
    """

    issuer: _KeyId
    version: _U63
    """Strictly increasing; a client never goes back to a lower version."""
    issued_at: _U63
    serials: Annotated[tuple[_U63, ...], msgspec.Meta(max_length=_MAX_REVOKED)]
    device_ids: Annotated[tuple[_DeviceId, ...], msgspec.Meta(max_length=_MAX_REVOKED)]
    root_signature: _Signature

    def signed_part(self) -> bytes:
        """The exact bytes the org root signs."""
        return _REVOCATIONS_CONTEXT + _ENCODER.encode(
            (self.issuer, self.version, self.issued_at, self.serials, self.device_ids)
        )

    def to_bytes(self) -> bytes:
        """Canonical wire form: a format version byte, then the msgpack array."""
        return bytes((_REVOCATIONS_VERSION,)) + _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> RevocationList:
        """Decode (structure only; :meth:`TrustAnchor.verify_revocations` checks the signature).

        Raises :class:`CredentialError` on any malformed input.
        """
        revocations = decode_versioned(
            data,
            version=_REVOCATIONS_VERSION,
            decoder=_REVOCATIONS_DECODER,
            max_size=_MAX_REVOCATIONS_BYTES,
            what="revocation list",
            error=CredentialError,
            fix="update the client",
        )
        if not _strictly_sorted(revocations.serials) or not _strictly_sorted(
            revocations.device_ids
        ):
            raise CredentialError("revocation list entries are not sorted and unique: refused")
        return revocations

    def revokes(self, credential: Credential) -> bool:
        """True if the credential's serial or device id is on this list."""
        return _contains(self.serials, credential.serial) or _contains(
            self.device_ids, credential.device_id
        )


_REVOCATIONS_DECODER: Final = msgspec.msgpack.Decoder(RevocationList)


def _strictly_sorted(items: tuple[int, ...] | tuple[str, ...]) -> bool:
    return all(a < b for a, b in itertools.pairwise(items))  # type: ignore[operator]


def _contains(items: tuple[int, ...] | tuple[str, ...], item: int | str) -> bool:
    index = bisect.bisect_left(items, item)
    return index < len(items) and items[index] == item


# --- org root -----------------------------------------------------------------------------------


class OrgRoot:
    """The organisation's root signing key. Kept offline by the admin; signs credentials
    and revocation lists."""

    __slots__ = ("_key", "_key_id", "_public")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes_raw()
        self._key_id = _key_id(self._public)

    def __repr__(self) -> str:
        return f"OrgRoot(key_id={self._key_id.hex()})"

    @classmethod
    def generate(cls) -> OrgRoot:
        """A fresh root key for a new organisation."""
        return cls(ed25519.Ed25519PrivateKey.generate())

    def public_key_bytes(self) -> bytes:
        """Raw Ed25519 public key (32 bytes): what servers and clients pin in a TrustAnchor."""
        return self._public

    @property
    def key_id(self) -> bytes:
        """8-byte id of this root, carried in every credential it issues."""
        return self._key_id

    def to_bytes(self, passphrase: str | None, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> bytes:
        """Export the root key, encrypted with scrypt + AES-256-GCM when a passphrase is given."""
        return seal_key_file("org-root", self._key.private_bytes_raw(), passphrase, scrypt_n)

    @classmethod
    def from_bytes(cls, data: bytes, passphrase: str | None = None) -> OrgRoot:
        """Load a root key written by :meth:`to_bytes`; raises :class:`KeyStoreError`."""
        plain = open_key_file("org-root", data, passphrase)
        try:
            return cls(ed25519.Ed25519PrivateKey.from_private_bytes(plain))
        except ValueError as exc:
            raise KeyStoreError("org-root key file is damaged: restore it from backup") from exc

    def issue_credential(
        self,
        *,
        user_id: str,
        display_name: str,
        role: Role,
        device_id: str,
        signing_key: bytes,
        hpke_key: bytes,
        not_before: int,
        not_after: int,
        serial: int,
    ) -> Credential:
        """Certify a device's public keys for ``user_id``, valid in [not_before, not_after).

        Raises :class:`CredentialError` if a field is out of bounds or a key is invalid.
        """
        if not_after <= not_before:
            raise CredentialError(
                f"credential for {user_id!r} would be valid for no time: not_after must be"
                " later than not_before"
            )
        try:
            ed25519_public_key(bytes(signing_key))
            hpke_public_key(bytes(hpke_key))
        except ValueError as exc:
            raise CredentialError(
                f"public keys for {user_id!r} are invalid ({exc}): regenerate the device keys"
            ) from exc
        unsigned = Credential(
            self._key_id,
            serial,
            user_id,
            display_name,
            Role(role),
            device_id,
            bytes(signing_key),
            bytes(hpke_key),
            int(not_before),
            int(not_after),
            bytes(SIGNATURE_SIZE),
        )
        credential = msgspec.structs.replace(
            unsigned, root_signature=self._key.sign(unsigned.signed_part())
        )
        # Round-trip through the decoder so every length and range constraint is enforced
        # on issue, not first discovered by the receiver.
        return Credential.from_bytes(credential.to_bytes())

    def sign_revocations(
        self,
        *,
        version: int,
        issued_at: int,
        serials: Iterable[int] = (),
        device_ids: Iterable[str] = (),
    ) -> RevocationList:
        """Sign a complete revocation list. Each new list must carry a higher ``version``."""
        unsigned = RevocationList(
            self._key_id,
            version,
            int(issued_at),
            tuple(sorted(set(serials))),
            tuple(sorted(set(device_ids))),
            bytes(SIGNATURE_SIZE),
        )
        revocations = msgspec.structs.replace(
            unsigned, root_signature=self._key.sign(unsigned.signed_part())
        )
        return RevocationList.from_bytes(revocations.to_bytes())


# --- trust anchor -------------------------------------------------------------------------------


class TrustAnchor:
    """The pinned org root public key plus the newest revocation list seen.

    Sans-I/O: times are passed in. The only state is :attr:`revocations`, which
    :meth:`verify_revocations` moves forward and never back.
    """

    __slots__ = ("_key_id", "_public", "_public_key", "revocations")

    def __init__(self, root_public_key: bytes, revocations: RevocationList | None = None) -> None:
        if len(root_public_key) != SIGNING_KEY_SIZE:
            raise CredentialError(
                f"org root public key must be {SIGNING_KEY_SIZE} bytes, got {len(root_public_key)}"
            )
        self._public = bytes(root_public_key)
        self._public_key = ed25519.Ed25519PublicKey.from_public_bytes(self._public)
        self._key_id = _key_id(self._public)
        self.revocations: RevocationList | None = None
        """Newest verified revocation list, or None before the first one arrives."""
        if revocations is not None:
            self.verify_revocations(revocations)

    @property
    def key_id(self) -> bytes:
        """8-byte id of the pinned root."""
        return self._key_id

    def verify_credential(
        self,
        credential: Credential | bytes,
        now: float,
        revocations: RevocationList | None = None,
    ) -> Credential:
        """Return the credential if it chains to this root, is valid at ``now`` and not revoked.

        ``revocations`` defaults to the newest list this anchor accepted. Raises
        :class:`CredentialError` naming the user, the reason and the fix.
        """
        if not isinstance(credential, Credential):
            credential = Credential.from_bytes(credential)
        who = credential.user_id
        if credential.issuer != self._key_id:
            raise CredentialError(
                f"credential for {who!r} was issued by another organisation's root "
                f"(key id {credential.issuer.hex()}, ours is {self._key_id.hex()}):"
                f" enroll it here with `ptt-admin enroll {who}`",
                reason="foreign_root",
            )
        try:
            self._public_key.verify(credential.root_signature, credential.signed_part())
        except InvalidSignature as exc:
            raise CredentialError(
                f"credential for {who!r} is not signed by the organisation root (altered or"
                f" forged): re-enroll with `ptt-admin enroll {who}`",
                reason="forged",
            ) from exc
        if now < credential.not_before:
            raise CredentialError(
                f"credential for {who!r} is not valid before {_date(credential.not_before)}:"
                " check this device's clock, or wait",
                reason="not_yet_valid",
            )
        if now >= credential.not_after:
            raise CredentialError(
                f"credential for {who!r} expired on {_date(credential.not_after)}:"
                f" re-enroll with `ptt-admin enroll {who}`",
                reason="expired",
            )
        active = revocations if revocations is not None else self.revocations
        if active is not None and active.revokes(credential):
            raise CredentialError(
                f"credential for {who!r} (serial {credential.serial}, device"
                f" {credential.device_id!r}) is revoked: enroll a new device with"
                f" `ptt-admin enroll {who}`",
                reason="revoked",
            )
        return credential

    def verify_revocations(self, data: RevocationList | bytes) -> RevocationList:
        """Verify a revocation list and install it as :attr:`revocations`.

        Refused (:class:`CredentialError`, nothing changes) unless signed by this root and
        newer than the current list; the exact same list again is accepted as a no-op
        (the server resends it on every login).
        """
        revocations = data if isinstance(data, RevocationList) else RevocationList.from_bytes(data)
        if revocations.issuer != self._key_id:
            raise CredentialError(
                "revocation list was issued by another organisation's root: refused"
            )
        try:
            self._public_key.verify(revocations.root_signature, revocations.signed_part())
        except InvalidSignature as exc:
            raise CredentialError(
                "revocation list is not signed by the organisation root: refused"
            ) from exc
        current = self.revocations
        if current is not None:
            if revocations == current:
                return current
            if revocations.version <= current.version:
                raise CredentialError(
                    f"revocation list version {revocations.version} is not newer than the"
                    f" current version {current.version} (rollback): refused"
                )
        self.revocations = revocations
        return revocations
