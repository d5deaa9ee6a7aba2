"""Private key files: a device's or the org root's secret, sealed with a passphrase.

``version | msgpack(kind, kdf, scrypt n/r/p, salt, nonce, body)``: with a passphrase the
body is AES-256-GCM under a key from scrypt (RFC 7914), the header fields being the AAD;
without one (``kdf = "none"``) the secret is in the clear and the callers warn. A crafted
file cannot make us allocate more than scrypt N = 2**20.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Annotated, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.errors import KeyStoreError

__all__ = ["DEFAULT_SCRYPT_N", "key_file_kind", "open_key_file", "seal_key_file"]

_KEYFILE_VERSION: Final = 1
_MAX_KEYFILE_BYTES: Final = 4096
_KEYFILE_CONTEXT: Final = b"fieldradio key file v1\x00"

DEFAULT_SCRYPT_N: Final = 2**17
"""scrypt cost for exported keys: 2**17 with r=8 (128 MiB, ~0.3 s here), the RFC 7914 /
OWASP interactive-login level. Tests pass a cheaper ``scrypt_n``."""
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_MIN_SCRYPT_N: Final = 2**10
_MAX_SCRYPT_N: Final = 2**20  # caps the memory a crafted key file can make us allocate (1 GiB)

_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_U63 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_ENCODER: Final = msgspec.msgpack.Encoder()


class _KeyFile(msgspec.Struct, array_like=True, frozen=True):
    kind: Annotated[str, msgspec.Meta(max_length=16)]
    kdf: Annotated[str, msgspec.Meta(max_length=16)]
    scrypt_n: _U63
    scrypt_r: _U32
    scrypt_p: _U32
    salt: Annotated[bytes, msgspec.Meta(max_length=32)]
    nonce: Annotated[bytes, msgspec.Meta(max_length=12)]
    body: Annotated[bytes, msgspec.Meta(max_length=1024)]

    def associated_data(self) -> bytes:
        return _KEYFILE_CONTEXT + _ENCODER.encode(
            (self.kind, self.kdf, self.scrypt_n, self.scrypt_r, self.scrypt_p, self.salt)
        )


_KEYFILE_DECODER: Final = msgspec.msgpack.Decoder(_KeyFile)


def _passphrase_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # NFC so the same passphrase typed on two keyboards derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode()
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def seal_key_file(kind: str, secret: bytes, passphrase: str | None, scrypt_n: int) -> bytes:
    if passphrase is None:
        key_file = _KeyFile(kind, "none", 0, 0, 0, b"", b"", secret)
    else:
        if not passphrase:
            raise KeyStoreError("empty passphrase: give one, or pass None to export unencrypted")
        if scrypt_n < _MIN_SCRYPT_N or scrypt_n > _MAX_SCRYPT_N or scrypt_n & (scrypt_n - 1):
            raise KeyStoreError(
                f"scrypt_n must be a power of two between {_MIN_SCRYPT_N} and {_MAX_SCRYPT_N}"
            )
        salt = os.urandom(16)
        nonce = os.urandom(12)
        header = _KeyFile(kind, "scrypt", scrypt_n, _SCRYPT_R, _SCRYPT_P, salt, nonce, b"")
        key = _passphrase_key(passphrase, salt, scrypt_n, _SCRYPT_R, _SCRYPT_P)
        body = AESGCM(key).encrypt(nonce, secret, header.associated_data())
        key_file = _KeyFile(kind, "scrypt", scrypt_n, _SCRYPT_R, _SCRYPT_P, salt, nonce, body)
    return bytes((_KEYFILE_VERSION,)) + _ENCODER.encode(key_file)


def open_key_file(kind: str, data: bytes, passphrase: str | None) -> bytes:
    if len(data) > _MAX_KEYFILE_BYTES or not data or data[0] != _KEYFILE_VERSION:
        raise KeyStoreError(f"not a Fieldradio {kind} key file (or an unsupported version)")
    try:
        key_file = _KEYFILE_DECODER.decode(data[1:])
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise KeyStoreError(f"{kind} key file is damaged ({exc}): restore it from backup") from exc
    if key_file.kind != kind:
        raise KeyStoreError(f"this is a {key_file.kind!r} key file, not a {kind!r} key file")
    if key_file.kdf == "none":
        return key_file.body
    if key_file.kdf != "scrypt":
        raise KeyStoreError(f"{kind} key file uses unknown protection {key_file.kdf!r}")
    if passphrase is None:
        raise KeyStoreError(f"{kind} key file is protected by a passphrase: give the passphrase")
    n, r, p = key_file.scrypt_n, key_file.scrypt_r, key_file.scrypt_p
    if not (_MIN_SCRYPT_N <= n <= _MAX_SCRYPT_N) or n & (n - 1) or r != _SCRYPT_R or p != _SCRYPT_P:
        raise KeyStoreError(f"{kind} key file has unsupported scrypt parameters: refused")
    if len(key_file.salt) != 16 or len(key_file.nonce) != 12:
        raise KeyStoreError(f"{kind} key file is damaged: restore it from backup")
    key = _passphrase_key(passphrase, key_file.salt, n, r, p)
    try:
        return AESGCM(key).decrypt(key_file.nonce, key_file.body, key_file.associated_data())
    except InvalidTag as exc:
        raise KeyStoreError(
            f"wrong passphrase for the {kind} key file (or the file is damaged): try again"
        ) from exc


def key_file_kind(data: bytes) -> str | None:
    """``"org-root"`` or ``"device"`` if ``data`` is a Fieldradio private key file (encrypted
    or not), else None. Needs no passphrase: for a relay to notice keys it must not hold."""
    if not data or len(data) > _MAX_KEYFILE_BYTES or data[0] != _KEYFILE_VERSION:
        return None
    try:
        key_file = _KEYFILE_DECODER.decode(data[1:])
    except (msgspec.DecodeError, ValueError):
        return None
    return key_file.kind if key_file.kind in ("org-root", "device") else None
