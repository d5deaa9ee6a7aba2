"""Signed objects that carry their signer's credential: decoded, and the signer checked.

A patch order and a call description travel with the credential of the device that signed
them, so whoever receives one verifies it against the org root without asking the relay for
anything. :func:`open_with_signer` is the first half of that check, the same for both: the
blob decoded (:func:`crypto.wire.decode_versioned`) and the credential inside it verified
against the trust anchor at ``now``. Every failure becomes the caller's own error class, with
what it was and why; the caller then checks the object and its signature.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import msgspec

from crypto.errors import CredentialError, CryptoError
from crypto.identity import Credential, TrustAnchor
from crypto.wire import decode_versioned

__all__ = ["open_with_signer"]


class _CarriesSigner(Protocol):
    @property
    def signer_credential(self) -> bytes: ...


S = TypeVar("S", bound=_CarriesSigner)


def open_with_signer(
    data: bytes,
    trust: TrustAnchor,
    now: float,
    *,
    version: int,
    decoder: msgspec.msgpack.Decoder[S],
    max_size: int,
    what: str,
    error: type[CryptoError],
    fix: str,
) -> tuple[S, Credential]:
    """``data`` decoded as ``what``, and its signer's credential, verified at ``now``.

    Raises ``error`` (malformed, signer refused) and nothing else."""
    try:
        signed = decode_versioned(
            data,
            version=version,
            decoder=decoder,
            max_size=max_size,
            what=what,
            error=error,
            fix=fix,
        )
        signer = trust.verify_credential(signed.signer_credential, now)
    except CredentialError as exc:
        raise error(f"{what} signer refused: {exc}") from exc
    except error:
        raise
    except CryptoError as exc:  # a malformed credential inside the object
        raise error(f"{what} is malformed: {exc}") from exc
    return signed, signer
