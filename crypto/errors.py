"""The one exception tree of the ``crypto`` package.

Every failure raised by ``crypto`` is a :class:`CryptoError`, so a caller that
handles untrusted input can catch one class and drop the message. The
subclasses say which promise was broken, and their messages say what a person
can do about it (re-enroll, ask a dispatcher, update the client). Messages are
for local logs and operators only: never send exception details to a peer.

Tree::

    CryptoError
    +-- CredentialError   credential or revocation list invalid, expired, revoked, foreign
    +-- RosterError       signed roster refused (signer role, rollback, replay, tamper)
    |   +-- StaleRosterError   a valid roster, but not newer than the one held
    +-- PatchError        signed patch order refused (signer, expired, tampered)
    +-- CallError         signed call description refused (signer, call, stale, tampered)
    +-- EnvelopeError     epoch-key envelope refused (not for me, bad creator, tampered)
    +-- FrameError        media frame refused (auth failure, unknown KID, bad header)
    |   +-- ReplayError   frame counter already seen or too old for the replay window
    +-- SignatureError    Ed25519 signature does not verify, or a signed blob is malformed
    +-- KeyStoreError     exported device/root keys cannot be decoded or decrypted
    +-- TextError         sealed channel/direct text refused
    +-- BundleError       credential bundle malformed, oversize, or its keys do not open
        +-- NotABundleError   the bytes are no bundle at all (empty, text, audio, truncated)
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "CallError",
    "CredentialError",
    "CryptoError",
    "EnvelopeError",
    "ForgedFrameError",
    "FrameError",
    "KeyStoreError",
    "KeyringError",
    "NotABundleError",
    "PatchError",
    "ReplayError",
    "RosterError",
    "SignatureError",
    "StaleRosterError",
    "TextError",
]


class CryptoError(Exception):
    """Base class of every error raised by the ``crypto`` package."""


class CredentialError(CryptoError):
    """A credential or revocation list failed verification.

    The message names the user, the reason and the fix, e.g.
    "credential for 'alice' expired on 2026-11-01: re-enroll with `ptt-admin enroll alice`".
    ``reason`` is a stable machine-readable word for servers and metrics: "expired",
    "not_yet_valid", "revoked", "foreign_root", "forged" or "invalid".
    """

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class RosterError(CryptoError):
    """A signed roster was refused (signer not allowed, version rollback or replay, tampered)."""


class StaleRosterError(RosterError):
    """A roster that verifies, refused only for not being newer than the one held (a
    rollback, or a late copy of an older version)."""


class PatchError(CryptoError):
    """A signed patch order was refused: not a dispatcher's, expired, tampered or malformed."""


class CallError(CryptoError):
    """A signed call description (private-call offer or answer) was refused: not the caller's
    or callee's device, for another call, stale, tampered or malformed."""


class EnvelopeError(CryptoError):
    """An epoch-key envelope was refused (not addressed to us, bad creator, tampered)."""


class FrameError(CryptoError):
    """A media frame was refused: authentication failure, unknown KID or bad header."""


class ReplayError(FrameError):
    """A media frame counter was already seen, or is older than the replay window."""


class SignatureError(CryptoError):
    """An Ed25519 signature did not verify, or a signed structure could not be decoded."""


class KeyStoreError(CryptoError):
    """Exported key material could not be decoded, or the passphrase is wrong."""


class TextError(CryptoError):
    """A sealed channel or direct text message was refused (tampered, wrong epoch, wrong recipient)."""


# Added by the "frames" helper (crypto/keyring.py, crypto/talker.py).


class KeyringError(CryptoError):
    """An epoch key was refused by a frame sealer or opener (other channel, same epoch
    with a different secret, roster that does not match the key), or a sender ran out
    of counters and must rekey."""


class ForgedFrameError(SignatureError):
    """Received voice frames do not match the hashes their talker signed: someone who
    holds the channel key injected or substituted them. ``sequences`` lists them."""

    def __init__(self, message: str, sequences: tuple[int, ...]) -> None:
        super().__init__(message)
        self.sequences = sequences


# Added by the "admin" helper (crypto/bundle.py).


class BundleError(CryptoError):
    """A credential bundle was refused (oversize, unknown version, malformed, foreign
    credential, bad server URL or fingerprint), or its device keys do not open (wrong
    passphrase, keys that do not match the credential)."""


class NotABundleError(BundleError):
    """The bytes are not a credential bundle at all: an empty, text, audio or key file, or
    a bundle cut short. ``what`` says what they look like ("a WAV audio file"); a bundle of
    a newer format version is a plain :class:`BundleError`, saying the version."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not a Fieldradio device bundle ({what})")
        self.what = what
