"""The exception tree of ``ptt_protocol``.

Tree::

    ValueError
    +-- ProtocolError               bytes from the network were rejected
        +-- MalformedError          wrong size, unknown type, bad field, wrong session
        |   +-- UnsupportedVersionError   version byte is not ours
        +-- AuthenticationError     hop-layer AEAD tag did not verify (forged, tampered, wrong key)
        +-- ReplayError             hop-layer counter already seen or older than the window
    RuntimeError
    +-- SessionExhaustedError       a hop session used its last counter (local, not network input)

A :class:`ProtocolError` is never sent back to the peer in detail: log it,
count it (``exc.reason`` is a short, fixed label for metrics), drop the input.
"""


class ProtocolError(ValueError):
    """Input from the network was rejected; the message says why."""

    reason = "invalid"
    """A short, fixed label for metrics (e.g. ``drops[exc.reason] += 1``)."""


class MalformedError(ProtocolError):
    """The bytes are not a well-formed message: size, type, field or session index is wrong."""

    reason = "malformed"


class UnsupportedVersionError(MalformedError):
    """The version byte is not one this code speaks: the peer runs another release; update it."""

    reason = "version"


class AuthenticationError(ProtocolError):
    """A datagram's authentication tag did not verify: forged, tampered or sealed with another key."""

    reason = "auth"


class ReplayError(ProtocolError):
    """A datagram's counter was already accepted, or is older than the replay window."""

    reason = "replay"


class SessionExhaustedError(RuntimeError):
    """A hop session sent its last possible counter: log in again to get a fresh hop key."""
