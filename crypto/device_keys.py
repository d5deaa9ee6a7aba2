"""A device's private keys and the public-key primitives around them.

Ed25519 for signatures (RFC 8032), HPKE (RFC 9180) with the ML-KEM-768 + X25519 hybrid
KEM for envelopes and direct texts; :class:`DeviceKeys` never leaves a device except
through :meth:`DeviceKeys.export` (passphrase-protected, :mod:`crypto.keyfile`).
Importable from :mod:`crypto.identity` too.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM768X25519PublicKey,
    Suite,
)

from crypto.errors import CredentialError, CryptoError, KeyStoreError
from crypto.keyfile import DEFAULT_SCRYPT_N, open_key_file, seal_key_file

if TYPE_CHECKING:
    from crypto.identity import Credential

__all__ = [
    "HPKE_PUBLIC_KEY_SIZE",
    "HPKE_SUITE",
    "SIGNATURE_SIZE",
    "SIGNING_KEY_SIZE",
    "DeviceKeys",
    "SigningKey",
    "ed25519_public_key",
    "hpke_public_key",
    "hpke_seal",
]

SIGNING_KEY_SIZE: Final = 32
"""Raw Ed25519 public key (RFC 8032)."""
SIGNATURE_SIZE: Final = 64
"""Ed25519 signature (RFC 8032)."""
_MLKEM768_PUBLIC_SIZE: Final = 1184
_X25519_PUBLIC_SIZE: Final = 32
HPKE_PUBLIC_KEY_SIZE: Final = _MLKEM768_PUBLIC_SIZE + _X25519_PUBLIC_SIZE
"""Raw hybrid public key as carried in a credential: ML-KEM-768 (1,184) then X25519 (32)."""
_MLKEM768_SEED_SIZE: Final = 64

HPKE_SUITE: Final = Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
"""The one HPKE suite (RFC 9180 + the ML-KEM/X25519 hybrid KEM) used for envelopes and direct text."""

SigningKey = Annotated[
    bytes, msgspec.Meta(min_length=SIGNING_KEY_SIZE, max_length=SIGNING_KEY_SIZE)
]

_ENCODER: Final = msgspec.msgpack.Encoder()


@functools.lru_cache(maxsize=1024)
def hpke_public_key(raw: bytes) -> MLKEM768X25519PublicKey:
    # Parsing an ML-KEM-768 key costs ~17 us; a dispatcher rewraps to the same
    # members on every rekey, so cache the parsed objects (they are immutable).
    mlkem_key = mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_SIZE])
    x_key = x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC_SIZE:])
    return MLKEM768X25519PublicKey(mlkem_key, x_key)


@functools.lru_cache(maxsize=4096)
def ed25519_public_key(raw: bytes) -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def hpke_seal(recipient_hpke_key: bytes, plaintext: bytes, info: bytes) -> bytes:
    """Encrypt ``plaintext`` to a raw hybrid public key with :data:`HPKE_SUITE` (single shot).

    ``cryptography``'s HPKE has no AAD argument: bind all context through ``info``.
    Raises :class:`CredentialError` if the key bytes are not a valid hybrid public key.
    """
    if len(recipient_hpke_key) != HPKE_PUBLIC_KEY_SIZE:
        raise CredentialError(
            f"HPKE public key is {len(recipient_hpke_key)} bytes, expected {HPKE_PUBLIC_KEY_SIZE}"
        )
    try:
        public_key = hpke_public_key(bytes(recipient_hpke_key))
    except ValueError as exc:
        raise CredentialError(f"HPKE public key is invalid ({exc}): re-enroll the device") from exc
    return HPKE_SUITE.encrypt(plaintext, public_key, info=info)


# --- device keys --------------------------------------------------------------------------------


class _DeviceSecrets(msgspec.Struct, array_like=True, frozen=True):
    signing: SigningKey
    mlkem_seed: Annotated[
        bytes, msgspec.Meta(min_length=_MLKEM768_SEED_SIZE, max_length=_MLKEM768_SEED_SIZE)
    ]
    x25519: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


_DEVICE_SECRETS_DECODER: Final = msgspec.msgpack.Decoder(_DeviceSecrets)


class DeviceKeys:
    """A device's private keys: Ed25519 for signing, ML-KEM-768 + X25519 for HPKE.

    Never leaves the device except through :meth:`export` (passphrase-protected).
    """

    __slots__ = ("_hpke", "_hpke_public", "_mlkem", "_signing", "_signing_public", "_x25519")

    def __init__(
        self,
        signing: ed25519.Ed25519PrivateKey,
        mlkem_key: mlkem.MLKEM768PrivateKey,
        x25519_key: x25519.X25519PrivateKey,
    ) -> None:
        self._signing = signing
        self._mlkem = mlkem_key
        self._x25519 = x25519_key
        self._hpke = MLKEM768X25519PrivateKey(mlkem_key, x25519_key)
        self._signing_public = signing.public_key().public_bytes_raw()
        self._hpke_public = (
            mlkem_key.public_key().public_bytes_raw() + x25519_key.public_key().public_bytes_raw()
        )

    def __repr__(self) -> str:
        return f"DeviceKeys(signing_key={self._signing_public.hex()[:16]}...)"

    @classmethod
    def generate(cls) -> DeviceKeys:
        """Fresh random keys for a new device."""
        return cls(
            ed25519.Ed25519PrivateKey.generate(),
            mlkem.MLKEM768PrivateKey.generate(),
            x25519.X25519PrivateKey.generate(),
        )

    @property
    def signing_public_key(self) -> bytes:
        """Raw Ed25519 public key (32 bytes), goes into :attr:`Credential.signing_key`."""
        return self._signing_public

    @property
    def hpke_public_key(self) -> bytes:
        """Raw hybrid public key (1,216 bytes), goes into :attr:`Credential.hpke_key`."""
        return self._hpke_public

    def matches(self, credential: Credential) -> bool:
        """True if ``credential`` certifies these keys (both the signing and the HPKE key)."""
        return (
            credential.signing_key == self._signing_public
            and credential.hpke_key == self._hpke_public
        )

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over ``data``; put a context label in ``data``."""
        return self._signing.sign(data)

    def hpke_open(self, ciphertext: bytes, info: bytes) -> bytes:
        """Decrypt an HPKE message sealed to this device with :func:`hpke_seal`.

        Raises the base :class:`CryptoError` on any failure; callers re-raise the
        specific error (EnvelopeError, TextError) with context.
        """
        try:
            return HPKE_SUITE.decrypt(ciphertext, self._hpke, info=info)
        except (InvalidTag, ValueError) as exc:
            raise CryptoError("HPKE decryption failed") from exc

    def export(self, passphrase: str | None, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> bytes:
        """Serialise the private keys; encrypted (scrypt + AES-256-GCM) when a passphrase is given.

        ``scrypt_n`` is the scrypt cost (power of two); keep the default outside tests.
        """
        secrets = _DeviceSecrets(
            self._signing.private_bytes_raw(),
            self._mlkem.private_bytes_raw(),
            self._x25519.private_bytes_raw(),
        )
        return seal_key_file("device", _ENCODER.encode(secrets), passphrase, scrypt_n)

    @classmethod
    def import_(cls, data: bytes, passphrase: str | None = None) -> DeviceKeys:
        """Load keys written by :meth:`export`. Raises :class:`KeyStoreError` (wrong passphrase,
        damaged or foreign file)."""
        plain = open_key_file("device", data, passphrase)
        try:
            secrets = _DEVICE_SECRETS_DECODER.decode(plain)
            return cls(
                ed25519.Ed25519PrivateKey.from_private_bytes(secrets.signing),
                mlkem.MLKEM768PrivateKey.from_seed_bytes(secrets.mlkem_seed),
                x25519.X25519PrivateKey.from_private_bytes(secrets.x25519),
            )
        except (msgspec.DecodeError, ValueError) as exc:
            raise KeyStoreError("device key file is damaged: restore it from backup") from exc
