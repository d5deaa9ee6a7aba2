"""SFrame (RFC 9605): frame header, key derivation, and AEAD seal/open.

This module is the RFC and nothing else; which key a sender uses, counters,
replay windows and epochs live in :mod:`crypto.keyring`.

* Header (RFC 9605 4.3): a config byte ``X|K(3)|Y|C(3)`` then the KID bytes then
  the CTR bytes. A value 0..7 sits in the config byte (flag 0); a larger one is
  written big-endian in the fewest bytes and the 3-bit field holds that length
  minus one (flag 1). Both values are at most 64 bits.
* Key derivation (RFC 9605 4.4.2)::

      sframe_secret = HKDF-Extract("", base_key)
      sframe_key    = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "  + KID(8) + suite(2), Nk)
      sframe_salt   = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " + KID(8) + suite(2), Nn)

* Encryption (RFC 9605 4.4.3): ``nonce = sframe_salt XOR CTR`` (CTR big-endian,
  Nn bytes), ``aad = header + metadata``, ``frame = header + AEAD.Encrypt(...)``.

Only the AES-GCM suites are implemented: AES_128_GCM_SHA256_128 (0x0004), which
Fieldradio uses, and AES_256_GCM_SHA512_128 (0x0005). The AES-CTR + HMAC suites
(0x0001-0x0003) trade tag length for bandwidth on video; a 60-byte voice frame gains
nothing from them, so they are left out rather than carried as untested code.

Decoding is strict: a header that is truncated, or not in the minimal encoding the
RFC requires senders to use, raises :class:`~crypto.errors.FrameError`. Every
failure (bad header, unknown KID, failed tag) is a ``FrameError`` and leaves no
state behind.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from crypto.errors import FrameError

__all__ = [
    "MAX_COUNTER",
    "MAX_HEADER_SIZE",
    "MAX_KID",
    "CipherSuite",
    "SFrameHeader",
    "SFrameKey",
    "SuiteParams",
    "decode_header",
    "derive_key_salt",
    "encode_header",
    "open_frame",
    "peek_kid",
    "suite_params",
]

MAX_KID: Final = 2**64 - 1
MAX_COUNTER: Final = 2**64 - 1
MAX_HEADER_SIZE: Final = 1 + 8 + 8
"""Config byte plus an 8-byte KID plus an 8-byte CTR."""

_KEY_LABEL: Final = b"SFrame 1.0 Secret key "
_SALT_LABEL: Final = b"SFrame 1.0 Secret salt "

# Config byte layout (RFC 9605 4.3, Figure 4), most significant bit first.
_X: Final = 0x80
_Y: Final = 0x08


class CipherSuite(enum.IntEnum):
    """SFrame cipher suites implemented here (RFC 9605 8.1 registry values)."""

    AES_128_GCM_SHA256_128 = 0x0004
    AES_256_GCM_SHA512_128 = 0x0005


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """The sizes RFC 9605 4.5 names for a suite: key Nk, nonce Nn, tag Nt, hash Nh."""

    suite: CipherSuite
    nk: int
    nn: int
    nt: int
    nh: int
    hash: type[hashes.SHA256] | type[hashes.SHA512]


_PARAMS: Final = {
    CipherSuite.AES_128_GCM_SHA256_128: SuiteParams(
        CipherSuite.AES_128_GCM_SHA256_128, 16, 12, 16, 32, hashes.SHA256
    ),
    CipherSuite.AES_256_GCM_SHA512_128: SuiteParams(
        CipherSuite.AES_256_GCM_SHA512_128, 32, 12, 16, 64, hashes.SHA512
    ),
}


def suite_params(suite: int) -> SuiteParams:
    """Sizes and hash of ``suite``; :class:`FrameError` for a suite not implemented here."""
    try:
        return _PARAMS[CipherSuite(suite)]
    except ValueError:
        raise FrameError(
            f"SFrame cipher suite 0x{suite:04x} is not supported: use AES_128_GCM_SHA256_128"
            " (0x0004)"
        ) from None


class SFrameHeader(NamedTuple):
    """A decoded SFrame header: key id, counter, and its size in bytes on the wire."""

    kid: int
    ctr: int
    size: int


def _value_bytes(value: int) -> bytes:
    """Minimal big-endian bytes of ``value`` (>= 8), as RFC 9605 4.3 requires."""
    return value.to_bytes((value.bit_length() + 7) >> 3, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    """The SFrame header for ``kid`` and ``ctr`` (RFC 9605 4.3), minimal encoding.

    Raises :class:`FrameError` if either value is outside 0..2**64-1.
    """
    if not 0 <= kid <= MAX_KID or not 0 <= ctr <= MAX_COUNTER:
        raise FrameError(f"SFrame KID {kid} or CTR {ctr} is outside 0..2**64-1")
    if kid < 8:
        config = kid << 4
        kid_bytes = b""
    else:
        kid_bytes = _value_bytes(kid)
        config = _X | (len(kid_bytes) - 1) << 4
    if ctr < 8:
        return bytes((config | ctr,)) + kid_bytes
    ctr_bytes = _value_bytes(ctr)
    return bytes((config | _Y | (len(ctr_bytes) - 1),)) + kid_bytes + ctr_bytes


def decode_header(data: bytes) -> SFrameHeader:
    """Parse the SFrame header at the start of ``data`` (which may hold the ciphertext too).

    Raises :class:`FrameError` if ``data`` is shorter than the header it announces, or
    if a value is not minimally encoded (a value 0..7 in extra bytes, or a leading
    zero byte): RFC 9605 4.3 has senders use the minimal form, and accepting only that
    form keeps one header per (KID, CTR).
    """
    if not data:
        raise FrameError("empty SFrame frame: no header")
    config = data[0]
    end = 1
    if config & _X:
        klen = ((config >> 4) & 7) + 1
        end = 1 + klen
        if len(data) < end:
            raise FrameError(f"SFrame header truncated: KID needs {klen} bytes")
        kid = int.from_bytes(data[1:end], "big")
        if kid < 8 or kid >> ((klen - 1) << 3) == 0:
            raise FrameError("SFrame KID is not minimally encoded")
    else:
        kid = (config >> 4) & 7
    if config & _Y:
        clen = (config & 7) + 1
        start = end
        end += clen
        if len(data) < end:
            raise FrameError(f"SFrame header truncated: CTR needs {clen} bytes")
        ctr = int.from_bytes(data[start:end], "big")
        if ctr < 8 or ctr >> ((clen - 1) << 3) == 0:
            raise FrameError("SFrame CTR is not minimally encoded")
    else:
        ctr = config & 7
    return SFrameHeader(kid, ctr, end)


def peek_kid(data: bytes, offset: int = 0) -> int:
    """The KID of the SFrame header starting at ``data[offset]``, and nothing else.

    For a relay that routes on the sender (the KID) without any key: it reads the config
    byte and the KID bytes only, skips the CTR and the minimal-encoding check (a receiver
    runs :func:`decode_header`, which refuses a non-minimal header, so nothing the relay
    lets through on a non-minimal KID can be opened). Raises :class:`FrameError` if there
    is no header byte or the KID is truncated.
    """
    if len(data) <= offset:
        raise FrameError("empty SFrame frame: no header")
    config = data[offset]
    if not config & _X:
        return (config >> 4) & 7
    end = offset + 2 + ((config >> 4) & 7)
    if len(data) < end:
        raise FrameError(f"SFrame header truncated: KID needs {end - offset - 1} bytes")
    if end == offset + 2:
        return data[offset + 1]  # one KID byte (up to 15 senders): no slice, no allocation
    return int.from_bytes(data[offset + 1 : end], "big")


def derive_key_salt(suite: int, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` for ``kid`` from ``base_key`` (RFC 9605 4.4.2)."""
    params = suite_params(suite)
    if not 0 <= kid <= MAX_KID:
        raise FrameError(f"SFrame KID {kid} is outside 0..2**64-1")
    # HKDF-Extract with an empty salt: HMAC keyed with "" (RFC 5869 2.2; a missing salt
    # would be HashLen zero bytes, which HMAC pads to the same block).
    secret = hmac.digest(b"", base_key, params.hash.name)
    suffix = kid.to_bytes(8, "big") + params.suite.to_bytes(2, "big")
    key = HKDFExpand(params.hash(), params.nk, _KEY_LABEL + suffix).derive(secret)
    salt = HKDFExpand(params.hash(), params.nn, _SALT_LABEL + suffix).derive(secret)
    return key, salt


class SFrameKey:
    """One KID's derived key and salt, ready to seal and open many frames.

    Derivation (two HKDF-Expand calls) happens once here; each frame then costs one
    AES-GCM call, an integer XOR for the nonce and a few byte concatenations.
    The caller chooses the counters: a counter must never be sealed twice under one
    key (AES-GCM nonce reuse leaks the keystream and the authentication key).
    """

    __slots__ = ("_aead", "_kid_bytes", "_kid_config", "_nn", "_salt", "kid", "suite")

    def __init__(self, suite: int, kid: int, base_key: bytes) -> None:
        key, salt = derive_key_salt(suite, kid, base_key)
        self.suite: Final = CipherSuite(suite)
        self.kid: Final = kid
        self._aead = AESGCM(key)
        self._nn = len(salt)
        self._salt = int.from_bytes(salt, "big")
        if kid < 8:
            self._kid_config = kid << 4
            self._kid_bytes = b""
        else:
            self._kid_bytes = _value_bytes(kid)
            self._kid_config = _X | (len(self._kid_bytes) - 1) << 4

    def __repr__(self) -> str:
        return f"SFrameKey(suite={self.suite.name}, kid={self.kid})"

    def header(self, ctr: int) -> bytes:
        """The header for this KID and ``ctr``; same bytes as :func:`encode_header`."""
        if ctr < 8:
            if ctr < 0:
                raise FrameError(f"SFrame CTR {ctr} is negative")
            return bytes((self._kid_config | ctr,)) + self._kid_bytes
        if ctr > MAX_COUNTER:
            raise FrameError(f"SFrame CTR {ctr} is above 2**64-1: rekey the sender")
        ctr_bytes = ctr.to_bytes((ctr.bit_length() + 7) >> 3, "big")
        return bytes((self._kid_config | _Y | (len(ctr_bytes) - 1),)) + self._kid_bytes + ctr_bytes

    def seal(self, ctr: int, metadata: bytes, plaintext: bytes) -> bytes:
        """``header + AEAD(plaintext)`` with ``aad = header + metadata`` (RFC 9605 4.4.3)."""
        header = self.header(ctr)
        nonce = (self._salt ^ ctr).to_bytes(self._nn, "big")
        return header + self._aead.encrypt(nonce, plaintext, header + metadata)

    def open(self, header: SFrameHeader, frame: bytes, metadata: bytes) -> bytes:
        """Decrypt ``frame`` whose header was already parsed into ``header`` (RFC 9605 4.4.4).

        Raises :class:`FrameError` if the KID is not this key's or the tag does not verify.
        """
        if header.kid != self.kid:
            raise FrameError(f"frame KID {header.kid} is not this key's KID {self.kid}")
        size = header.size
        nonce = (self._salt ^ header.ctr).to_bytes(self._nn, "big")
        try:
            return self._aead.decrypt(nonce, frame[size:], frame[:size] + metadata)
        except InvalidTag:
            raise FrameError(
                f"SFrame authentication failed (KID {header.kid}, CTR {header.ctr}): frame"
                " tampered with, moved, or sealed under another key"
            ) from None
        except ValueError:
            # cryptography refuses ciphertexts shorter than the tag this way.
            raise FrameError("SFrame frame too short to hold an authentication tag") from None


def open_frame(keys: Mapping[int, SFrameKey], frame: bytes, metadata: bytes) -> tuple[int, bytes]:
    """RFC 9605 4.4.4 decryption: parse the header, look the KID up, open.

    Returns ``(kid, plaintext)``. Raises :class:`FrameError` for a bad header, an
    unknown KID or a failed tag. No replay check: that is :mod:`crypto.keyring`'s job.
    """
    header = decode_header(frame)
    key = keys.get(header.kid)
    if key is None:
        raise FrameError(f"no key for SFrame KID {header.kid}")
    return header.kid, key.open(header, frame, metadata)
